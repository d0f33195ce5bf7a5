// lyricnn studio: the page of `lyricnn serve`. Plain JS, no build step, no network beyond
// this server. It speaks the OpenAI-style API documented in lyricnn/serve/api.py.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";

// Request fields read from the controls (the server checks every value and says what is
// wrong): numbers, and the texts of the last line. An empty box is left out (the server's
// default applies).
const NUMBERS = ["temperature", "top_k", "top_p", "min_p", "n", "max_tokens", "seed",
  "beam_width", "repetition_penalty", "presence_penalty", "frequency_penalty",
  "no_repeat_ngram", "dry_multiplier", "dry_base", "dry_allowed_length", "max_copy",
  "lines", "line_length"];
const TEXTS = ["acrostic", "banned"];

const MAX_N = 8;
const studio = { controller: null, lastRequest: null, cards: new Map() };
window.lyricnnStudio = studio;   // for tests and the console

// -- small helpers --------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function setStatus(text, state) {
  $("#status").textContent = text;
  if (state) document.body.dataset.state = state;
}

function showError(error) {
  const box = $("#error");
  const e = (error && error.error) || error || {};
  const message = e.message || String(error);
  box.textContent = e.param ? `${message} (parameter: ${e.param})` : message;
  box.hidden = false;
}

function clearError() { $("#error").hidden = true; $("#error").textContent = ""; }

const fmt = (x, digits = 1) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

// -- models and their cards ---------------------------------------------------------------

async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.json();
  if (!r.ok) throw body;
  return body;
}

async function loadModels() {
  try {
    const list = await getJSON("/v1/models");
    const select = $("#model");
    select.replaceChildren(...list.data.map((m) => el("option", { value: m.id }, m.id)));
    select.disabled = list.data.length < 2;
    await showCard(select.value);
    setStatus("ready", "idle");
    setBusy(false);
  } catch (err) {
    showError(err);
    setStatus("the models did not load", "error");
    if (err && err.error && err.error.code === "loading") setTimeout(loadModels, 1000);
  }
}

async function showCard(id) {
  const card = (await getJSON(`/v1/models/${encodeURIComponent(id)}`)).card;
  if ($("#model").value !== id) return;   // another model was picked meanwhile
  studio.card = card;
  const rows = [
    ["corpus", card.corpus], ["model", `${card.model} · ${card.tokens} level`],
    ["size", `${card.num_layers} × ${card.num_hiddens} hidden, `
             + `${card.parameters.toLocaleString()} parameters, `
             + `${card.vocab_size.toLocaleString()} tokens`],
    ["epochs", card.epochs], ["train perplexity", fmt(card.train_perplexity)],
    ["held-out perplexity", fmt(card.valid_perplexity) + " (best " + fmt(card.best_valid_perplexity) + ")"],
    ["lines", card.keep_newlines ? "newlines kept"
                                 : `separator ${JSON.stringify(card.line_separator)}`],
  ];
  const dl = el("dl");
  for (const [name, value] of rows) {
    const field = name.replace(/ /g, "_");   // e.g. [data-field=held-out_perplexity]
    dl.append(el("dt", {}, name), el("dd", { "data-field": field }, String(value)));
  }
  const c = card.curve;
  const curve = lineChart(c.epoch, [{ values: c.perplexity, name: "train", cls: "train" },
                                    { values: c.valid_perplexity, name: "held out", cls: "valid" }],
                          { width: 300, height: 130, id: "curve" });
  $("#card").replaceChildren(el("h2", {}, `model: ${card.id}`), dl,
    el("figure", {}, el("h3", {}, "training curve (perplexity per epoch)"), curve));
  $("#card").hidden = false;
}

// A line chart of series over xs (nulls are gaps), with a legend: an inline SVG.
function lineChart(xs, series, { width, height, id, ymin, ymax }) {
  const pad = { l: 34, r: 8, t: 8, b: 30 };
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && isFinite(v));
  let lo = ymin ?? Math.min(...all), hi = ymax ?? Math.max(...all);
  if (!all.length) { lo = 0; hi = 1; }
  if (hi === lo) { hi += 1; lo -= 1; }
  const x0 = xs[0], x1 = xs[xs.length - 1];
  const X = (x) => pad.l + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const Y = (y) => pad.t + (1 - (y - lo) / (hi - lo)) * (height - pad.t - pad.b);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart" });
  if (id) root.id = id;
  root.append(svg("line", { x1: pad.l, y1: Y(lo), x2: width - pad.r, y2: Y(lo), class: "axis" }),
              svg("line", { x1: pad.l, y1: pad.t, x2: pad.l, y2: Y(lo), class: "axis" }));
  for (const y of [lo, hi]) {
    root.append(svg("text", { x: pad.l - 3, y: Y(y) + 3, class: "tick", "text-anchor": "end" },
                    y >= 100 ? y.toFixed(0) : +y.toFixed(2)));
  }
  for (const x of [x0, x1]) {
    root.append(svg("text", { x: X(x), y: Y(lo) + 11, class: "tick", "text-anchor": "middle" }, x));
  }
  series.forEach((s, k) => {
    const points = xs.map((x, i) => [x, s.values[i]]).filter(([, v]) => v !== null && isFinite(v));
    if (points.length) {
      root.append(svg("polyline", { class: `series ${s.cls}`,
                                    points: points.map(([x, v]) => `${X(x)},${Y(v)}`).join(" ") }));
    }
    for (const [x, v] of points) {
      const dot = svg("circle", { cx: X(x), cy: Y(v), r: 2, class: `series ${s.cls}` });
      dot.append(svg("title", {}, `${s.name} ${x}: ${+v.toFixed(3)}`));
      root.append(dot);
    }
    const lx = pad.l + k * 90;
    root.append(svg("line", { x1: lx, y1: height - 6, x2: lx + 14, y2: height - 6,
                              class: `series ${s.cls}` }),
                svg("text", { x: lx + 18, y: height - 3, class: "legend" }, s.name));
  });
  return root;
}

// -- generation ------------------------------------------------------------------------------

function request() {
  const body = { model: $("#model").value, prompt: $("#prefix").value, stream: true, logprobs: 1 };
  for (const id of NUMBERS) {
    const raw = $(`#${id}`).value.trim();
    if (raw !== "") body[id] = isNaN(Number(raw)) ? raw : Number(raw);
  }
  for (const id of TEXTS) if ($(`#${id}`).value) body[id] = $(`#${id}`).value;
  const stop = $("#stop_strings").value;
  if (stop) body.stop = stop.split("|").filter(Boolean).map((s) => s.replace(/\\n/g, "\n"));
  return body;
}

function setBusy(busy) {
  $("#generate").disabled = busy;
  $("#stop").disabled = !busy;
  document.body.dataset.state = busy ? "busy" : "idle";
}

function candidateCard(index) {
  const card = el("article", { class: "candidate", "data-index": index },
                  el("header", {}, el("span", { class: "title" }, `#${index + 1}`),
                     el("span", { class: "meta" }, "…")),
                  el("div", { class: "lyric" },
                     el("span", { class: "prefix" }, studio.lastRequest.prompt),
                     el("span", { class: "text" })),
                  el("footer", { class: "originality" }));
  $("#candidates").append(card);
  studio.cards.set(index, { node: card, text: "", chunks: 0, done: false });
  return studio.cards.get(index);
}

async function generate(event) {
  event.preventDefault();
  if (studio.controller) return;
  clearError();
  const body = request();
  const count = body.n ?? 1;
  if (!(count >= 1 && count <= MAX_N)) {   // the server takes 16; the page shows 8 side by side
    showError({ error: { message: `n must be between 1 and ${MAX_N} here`, param: "n" } });
    return;
  }
  studio.lastRequest = body;
  studio.cards = new Map();
  $("#candidates").replaceChildren();
  for (let i = 0; i < count; i++) candidateCard(i);
  const controller = new AbortController();
  studio.controller = controller;
  setBusy(true);
  setStatus("generating…");
  const started = performance.now();
  let finished = 0;
  try {
    const r = await fetch("/v1/completions", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), signal: controller.signal,
    });
    if (!r.ok) {
      let error;
      try { error = await r.json(); } catch { error = { error: { message: `HTTP ${r.status}` } }; }
      $("#candidates").replaceChildren();
      throw error;
    }
    for await (const data of sseEvents(r.body)) {
      if (data.error) throw data;
      for (const choice of data.choices || []) {
        if (receive(choice)) finished++;
      }
      setStatus(`generating… ${finished}/${count} done`);
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    setStatus(`${finished} candidate(s) in ${seconds} s`);
  } catch (err) {
    if (err && err.name === "AbortError") setStatus("stopped");
    else { showError(err); setStatus("failed"); }
    for (const c of studio.cards.values()) if (!c.done) c.node.classList.add("stopped");
  } finally {
    studio.controller = null;
    setBusy(false);
  }
}

// Server-sent events of a fetch body: yields each `data:` payload parsed, until [DONE].
async function* sseEvents(stream) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
        if (!data) continue;
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

// One choice's chunk: append its text; on its last chunk render tokens and originality.
// Returns whether the choice is finished.
function receive(choice) {
  const c = studio.cards.get(choice.index) || candidateCard(choice.index);
  c.text += choice.text;
  c.chunks++;
  const textNode = $(".text", c.node);
  if (!choice.finish_reason) {
    textNode.append(choice.text);
    return false;
  }
  c.done = true;
  c.node.classList.add("done");
  const meta = [`seed ${choice.seed ?? "–"}`, choice.finish_reason];
  $(".meta", c.node).textContent = meta.join(" · ");
  renderTokens(textNode, c.text, choice.logprobs, choice.originality);
  renderOriginality($(".originality", c.node), choice.originality);
  return true;
}

// The text as one span per token (its probability on hover), copies highlighted.
function renderTokens(node, text, logprobs, originality) {
  if (!logprobs || !logprobs.tokens) { node.textContent = text; return; }
  const source = new Array(logprobs.tokens.length).fill(null);
  const spans = (originality && originality.copied_spans) || [];
  for (const s of [...spans].sort((a, b) => a.length - b.length)) {   // the longest span wins
    for (let i = s.start; i < s.end; i++) source[i] = s.source;
  }
  const longest = (originality && originality.longest_copy) || {};
  const parts = [];
  let at = 0;
  logprobs.tokens.forEach((token, i) => {
    // A token's text: itself, or after a joiner (words), or "\n" for a symbol like <eos>.
    let piece = token;
    if (!text.startsWith(token, at)) {
      const gap = text.slice(at).match(/^\s+/);
      if (gap && text.startsWith(token, at + gap[0].length)) {
        parts.push(gap[0]);
        at += gap[0].length;
      } else if (text[at] === "\n") {
        piece = "\n";
      } else {
        return;   // cut by a stop string: no text left for this token
      }
    }
    if (at >= text.length) return;
    at += piece.length;
    const p = Math.exp(logprobs.token_logprobs[i]);
    const title = [`p = ${p < 0.01 ? p.toExponential(1) : p.toFixed(2)}`];
    const cls = ["token"];
    if (source[i]) { cls.push("copied"); title.push(`copied from: ${source[i].text}`); }
    if (longest.length && i >= longest.start && i < longest.end) {
      cls.push("longest");
      if (!source[i] && longest.source) title.push(`longest copy, from: ${longest.source.text}`);
    }
    parts.push(el("span", { class: cls.join(" "), title: title.join("\n") }, piece));
  });
  if (at < text.length) parts.push(text.slice(at));
  node.replaceChildren(...parts);
}

function renderOriginality(node, o) {
  if (!o) return;
  const longest = o.longest_copy || {};
  const line = longest.source ? longest.source.text.replace(/\n/g, " / ") : "";
  const where = line ? ` (from “${line.length > 40 ? line.slice(0, 40) + "…" : line}”)` : "";
  const ns = Array.from({ length: 10 }, (_, i) => i + 1);
  const series = [{ values: o.novel_ngram_fraction || [], name: "this", cls: "model" }];
  if (o.human_novel_ngram_fraction) {
    series.push({ values: o.human_novel_ngram_fraction, name: "human", cls: "human" });
  }
  node.replaceChildren(
    el("p", { class: "longest-copy" }, "longest copy: ",
       el("b", {}, `${longest.length || 0}`),
       ` token(s)${where}; ${(o.copied_spans || []).length} copied span(s)`),
    el("p", { class: "chart-title" }, "novel n-grams, n = 1…10"),
    lineChart(ns, series, { width: 220, height: 110, ymin: 0, ymax: 1 }));
  $("svg", node).classList.add("novelty");
}

// -- wiring ------------------------------------------------------------------------------------

$("#controls").addEventListener("submit", generate);
$("#stop").addEventListener("click", () => studio.controller && studio.controller.abort());
$("#model").addEventListener("change", (e) => showCard(e.target.value).catch(showError));
$("#prefix").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) generate(e);
});
loadModels();
