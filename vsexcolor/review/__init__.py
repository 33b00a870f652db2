"""``vsexcolor review``'s page: a shots folder's keyframes in a browser, replaced, re-picked
and approved there, every change written to the folder as ``colorize --refs DIR`` reads it.

:mod:`.folder` reads and writes the folder, :mod:`.changes` checks and makes the page's
changes, :mod:`.film` gives the film's frames, :mod:`.thumbs` and :mod:`.preview` make the
pictures the page shows, :mod:`.app` serves it all (needs the ``review`` extra).
"""
