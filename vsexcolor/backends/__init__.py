"""Colorization backends behind one interface (:class:`vsexcolor.backends.base.Backend`)."""
