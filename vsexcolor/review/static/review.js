// The review page: a grid of shots (loaded a page at a time as it scrolls), and one shot's view.
"use strict";
const PAGE = 60;
const $ = (id) => document.getElementById(id);
let cards = [];          // the shots loaded so far, in order
let total = 0, loading = false, selected = 0, filter = "all", current = null;

function say(text) { $("message").textContent = text || ""; }

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({error: `${response.status} ${response.statusText}`}));
  if (!response.ok) { const e = new Error(body.error); e.exemplar = body.exemplar; throw e; }
  return body;
}

function post(path, body) {
  return api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
}

function stateOf(shot) {
  if (shot.approved) return ["approved", "approved"];
  if (shot.needs_colour) return ["needs", "needs colour"];
  return [shot.state, {automatic: "automatic", replaced: "replaced by hand", "re-picked": "re-picked"}[shot.state]];
}

function thumb(kind, k) {
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = `${kind} ${k.frame}`;
  img.src = `thumb/${kind}/${k.frame}?v=${encodeURIComponent(k.v)}`;
  return img;
}

function card(shot) {
  const div = document.createElement("div");
  div.className = "card";
  div.tabIndex = 0;
  div.dataset.number = shot.number;
  const [cls, label] = stateOf(shot);
  div.innerHTML = `<div>#${shot.number} <span>${shot.start}</span> <span>${shot.length} fr, ` +
                  `${shot.duration_s.toFixed(1)} s</span><span class="badge ${cls}">${label}</span></div>`;
  const pics = document.createElement("div");
  pics.className = "pics";
  for (const k of shot.keyframes) {
    if (!k.damaged) pics.append(thumb("gray", k));
    if (k.colour) pics.append(thumb("colour", k));
    else {
      const n = document.createElement("div");
      n.className = "needs";
      n.textContent = k.damaged ? `${String(k.frame).padStart(6, "0")} cannot be read` : "needs colour";
      pics.append(n);
    }
  }
  div.append(pics);
  div.addEventListener("click", () => select(cards.findIndex((c) => c.number === shot.number)));
  div.addEventListener("dblclick", () => openShot(shot.number));
  return div;
}

async function loadMore() {
  if (loading || (cards.length >= total && cards.length > 0)) return;
  loading = true;
  try {
    const page = await api(`api/shots?offset=${cards.length}&limit=${PAGE}&state=${filter}`);
    total = page.total;
    for (const shot of page.shots) { cards.push(shot); $("grid").append(card(shot)); }
    if (cards.length === page.shots.length) select(0, false);
  } catch (e) { say(e.message); }
  loading = false;
}

function resetGrid() {
  cards = []; total = 0; selected = 0;
  $("grid").replaceChildren();
  loadMore();
}

function select(i, focus = true) {
  const all = $("grid").children;
  if (!all.length) return;
  selected = Math.max(0, Math.min(i, all.length - 1));
  for (const c of all) c.classList.remove("selected");
  all[selected].classList.add("selected");
  if (focus) { all[selected].focus(); all[selected].scrollIntoView({block: "nearest"}); }
  if (selected >= all.length - 4) loadMore();
}

function columns() {
  const all = $("grid").children;
  let n = 1;
  while (n < all.length && all[n].offsetTop === all[0].offsetTop) n++;
  return n;
}

function replaceCard(shot) {
  const i = cards.findIndex((c) => c.number === shot.number);
  if (i < 0) return;
  cards[i] = shot;
  const old = $("grid").children[i];
  const fresh = card(shot);
  const focused = document.activeElement === old;
  old.replaceWith(fresh);
  if (i === selected) fresh.classList.add("selected");
  if (focused) fresh.focus();  // the keys go on where they were
}

function counted(result) {
  $("unapproved").textContent = `${result.unapproved} shot${result.unapproved === 1 ? "" : "s"} not yet approved`;
}

async function change(path, body) {
  try {
    const result = await post(path, body);
    counted(result);
    replaceCard(result.shot);
    if (current && current.number === result.shot.number) showShot(result.shot);
    say("");
    return result.shot;
  } catch (e) { say(e.message); return null; }
}

async function approveSelected() {
  const shot = cards[selected];
  if (shot) await change(`api/shots/${shot.number}/approve`, {version: shot.version, approved: !shot.approved});
}

// One shot.

async function openShot(number) {
  location.hash = `#shot/${number}`;
}

async function route() {
  const m = location.hash.match(/^#shot\/(\d+)$/);
  if (!m) { current = null; $("shot-view").hidden = true; $("grid-view").hidden = false; select(selected); return; }
  try { showShot(await api(`api/shots/${m[1]}`)); } catch (e) { say(e.message); }
}

function showShot(shot) {
  const first = current === null || current.number !== shot.number;
  current = shot;
  $("grid-view").hidden = true;
  $("shot-view").hidden = false;
  $("shot-title").textContent = `Shot ${shot.number}: frames ${shot.first}-${shot.last}, ${shot.start}, ` +
                                `${shot.duration_s.toFixed(1)} s`;
  const [cls, label] = stateOf(shot);
  $("shot-state").className = `badge ${cls}`;
  $("shot-state").textContent = label;
  $("approve").textContent = shot.approved ? "Approved (A: take back)" : "Approve (A)";
  $("keyframes").replaceChildren(...shot.keyframes.map((k) => keyframePanel(shot, k)));
  if (first) {
    $("scrubber").min = shot.first; $("scrubber").max = shot.last;
    $("scrubber").value = shot.keyframes.length ? shot.keyframes[0].frame : shot.first;
    scrubbed();
  }
  $("preview-note").textContent = "colouring the preview...";
  $("preview").src = `api/shots/${shot.number}/preview?v=${shot.version}`;
}

function keyframePanel(shot, k) {
  const div = document.createElement("div");
  div.className = "keyframe";
  div.dataset.frame = k.frame;
  const gray = document.createElement("img");
  gray.src = `picture/gray/${k.frame}?v=${encodeURIComponent(k.v)}`;
  gray.alt = `gray frame ${k.frame}`;
  div.append(gray);
  if (k.colour) {
    const colour = document.createElement("img");
    colour.src = `picture/colour/${k.frame}?v=${encodeURIComponent(k.v)}`;
    colour.alt = `keyframe ${k.frame}`;
    div.append(colour);
  }
  const side = document.createElement("div");
  side.innerHTML = `<p>Frame ${k.frame}${k.colour ? "" : ": <b>needs colour</b>"}</p>` +
    `<p><a href="frame/${k.frame}?full=1" download>Download the gray frame</a></p>` +
    `<div class="drop">Drop a hand-coloured picture of frame ${k.frame} here, or ` +
    `<input type="file" class="upload" accept="image/*"></div>` +
    `<p><button class="repick">Use the scrubber's frame instead</button></p>`;
  const drop = side.querySelector(".drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files.length) upload(k.frame, e.dataTransfer.files[0], false);
  });
  side.querySelector(".upload").addEventListener("change", (e) => {
    if (e.target.files.length) upload(k.frame, e.target.files[0], false);
  });
  side.querySelector(".repick").addEventListener("click", () =>
    change(`api/shots/${current.number}/repick`, {version: current.version, frame: k.frame, to: +$("scrubber").value}));
  div.append(side);
  return div;
}

async function upload(frame, file, exemplar) {
  const form = new FormData();
  form.append("version", current.version);
  form.append("frame", frame);
  form.append("exemplar", exemplar ? "1" : "0");
  form.append("file", file);
  say(`sending ${file.name}...`);
  try {
    const result = await api(`api/shots/${current.number}/upload`, {method: "POST", body: form});
    counted(result); replaceCard(result.shot); showShot(result.shot); say("");
  } catch (e) {
    say(e.message);
    if (e.exemplar) {
      const button = document.createElement("button");
      button.id = "as-exemplar";
      button.textContent = "Add it as an exemplar for the shot";
      button.onclick = () => upload(frame, file, true);
      $("message").append(" ", button);
    }
  }
}

function scrubbed() {
  const n = $("scrubber").value;
  $("scrub-frame").textContent = `frame ${n}`;
  $("scrub-image").src = `frame/${n}`;
  $("download-gray").href = `frame/${n}?full=1`;
}

// Wiring.

async function start() {
  try {
    const info = await api("api/folder");
    $("folder").textContent = `${info.folder}: ${info.shots} shots` + (info.model ? "" : " (no keyframe model: a re-picked frame needs colour)");
    $("command").textContent = info.command;
    counted(info);
  } catch (e) { say(e.message); }
  new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) loadMore(); })
    .observe($("more"));
  await loadMore();
  route();
}

$("filter").addEventListener("change", (e) => { filter = e.target.value; resetGrid(); });
$("scrubber").addEventListener("input", scrubbed);
$("back").addEventListener("click", () => { location.hash = ""; });
$("approve").addEventListener("click", () =>
  change(`api/shots/${current.number}/approve`, {version: current.version, approved: !current.approved}));
$("revert").addEventListener("click", () => change(`api/shots/${current.number}/revert`, {version: current.version}));
$("preview").addEventListener("load", () => { $("preview-note").textContent = "the shot's first frames, looping"; });
$("preview").addEventListener("error", async () => {
  const r = await fetch($("preview").src);
  $("preview-note").textContent = (await r.json().catch(() => ({}))).error || "no preview";
});
window.addEventListener("hashchange", route);
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  if (current) {
    if (e.key === "Escape") location.hash = "";
    else if (e.key === "a" || e.key === "A") $("approve").click();
    return;
  }
  const step = {ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns(), ArrowDown: columns()}[e.key];
  if (step) { e.preventDefault(); select(selected + step); }
  else if (e.key === "a" || e.key === "A") approveSelected();
  else if (e.key === "Enter" && cards[selected]) openShot(cards[selected].number);
});
start();
