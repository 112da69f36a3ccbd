// The draw-a-digit page: a pad to draw on (mouse, touch or pen), the drawing brought to
// MNIST's form (mnist_form.js), and every exported model run on it by onnxruntime-web,
// its ten probabilities shown as bars, live as the digit is drawn.
//
// window.digitPage is what the browser test and the benchmark read: `ready` (a promise of
// the models' loading), settled() (a promise: the shown bars are of the current drawing),
// state(), timings() (how long the last prediction took, in milliseconds) and
// predictAgain() (one more prediction of the current drawing).

import * as ort from "./ort/ort.wasm.bundle.min.mjs";
import { mnistForm, SIDE } from "./mnist_form.js";

// the vendored WebAssembly runtime, single-threaded: nothing is fetched from elsewhere
// (the bundle holds its JavaScript glue; only the binary is a file of its own)
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = {
  wasm: new URL("./ort/ort-wasm-simd-threaded.wasm", import.meta.url).href,
};
ort.env.logLevel = "error";

const INPUT = "pixels"; // the exported interface: uint8 [N, 1, 28, 28] in ...
const OUTPUT = "logits"; // ... float32 [N, 10] out
const PEN = 20; // pen width on the 280-pixel pad: about two of MNIST's 28 pixels

const pad = document.getElementById("pad");
const ink = pad.getContext("2d", { willReadFrequently: true });
const preview = document.getElementById("preview").getContext("2d");
const statusLine = document.getElementById("status");
const panels = document.getElementById("models");

const models = []; // {name, file, session, error, probabilities, panel}
let form = null; // the last drawing in MNIST's form (Uint8Array of 784), null when empty
let timings = null;

// --- drawing ----------------------------------------------------------------------------

let stroke = null; // the pointer drawing now, and where it was last
ink.lineWidth = PEN;
ink.lineCap = "round";
ink.lineJoin = "round";
ink.strokeStyle = ink.fillStyle = "#000";

function padPoint(event) {
  // the pad's pixels fill its content box: inside the border, scaled to its CSS size
  const box = pad.getBoundingClientRect();
  return [
    ((event.clientX - box.left - pad.clientLeft) * pad.width) / pad.clientWidth,
    ((event.clientY - box.top - pad.clientTop) * pad.height) / pad.clientHeight,
  ];
}

pad.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 || stroke) return;
  pad.setPointerCapture(event.pointerId);
  const [x, y] = padPoint(event);
  stroke = { id: event.pointerId, x, y };
  ink.beginPath();
  ink.arc(x, y, PEN / 2, 0, 2 * Math.PI);
  ink.fill();
  changed();
  event.preventDefault();
});

pad.addEventListener("pointermove", (event) => {
  if (!stroke || event.pointerId !== stroke.id) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  ink.beginPath();
  ink.moveTo(stroke.x, stroke.y);
  for (const each of events.length ? events : [event]) {
    [stroke.x, stroke.y] = padPoint(each);
    ink.lineTo(stroke.x, stroke.y);
  }
  ink.stroke();
  changed();
});

for (const end of ["pointerup", "pointercancel"]) {
  pad.addEventListener(end, (event) => {
    if (stroke && event.pointerId === stroke.id) stroke = null;
  });
}

document.getElementById("clear").addEventListener("click", () => {
  ink.clearRect(0, 0, pad.width, pad.height);
  changed();
});

// --- predicting, live: at most one prediction at a time, always of the latest drawing ----

let drawn = 0; // changes to the drawing so far
let shown = 0; // the change the bars show
let running = false;
const waiting = []; // settled() promises to resolve once the bars catch up

function changed() {
  drawn += 1;
  if (!running) {
    running = true;
    requestAnimationFrame(catchUp);
  }
}

async function catchUp() {
  while (shown !== drawn) {
    const change = drawn;
    try {
      await update();
    } catch (error) {
      statusLine.textContent = `could not read the drawing: ${error.message || error}`;
    }
    shown = change;
  }
  running = false;
  for (const resolve of waiting.splice(0)) resolve();
}

function inkOf(image) {
  const alpha = new Uint8ClampedArray(image.width * image.height);
  for (let i = 0; i < alpha.length; i++) alpha[i] = image.data[4 * i + 3];
  return alpha;
}

async function update() {
  const start = performance.now();
  form = mnistForm(inkOf(ink.getImageData(0, 0, pad.width, pad.height)), pad.width, pad.height);
  const prepared = performance.now();
  showForm(form);
  const perModel = {};
  for (const model of models) {
    if (!model.session) continue;
    const began = performance.now();
    try {
      model.probabilities = form ? await classify(model.session, form) : null;
    } catch (error) {
      model.session = model.probabilities = null; // shown as failed; the others go on
      showError(model, `${model.name}: could not run ${model.file}: ${error.message || error}`);
    }
    perModel[model.name] = performance.now() - began;
    showBars(model);
  }
  showStatus();
  timings = { total: performance.now() - start, preprocess: prepared - start, models: perModel };
}

async function classify(session, pixels) {
  const tensor = new ort.Tensor("uint8", pixels, [1, 1, SIDE, SIDE]);
  const logits = (await session.run({ [INPUT]: tensor }))[OUTPUT].data;
  const top = Math.max(...logits);
  const exp = Array.from(logits, (v) => Math.exp(v - top));
  const sum = exp.reduce((a, b) => a + b, 0);
  return exp.map((v) => v / sum);
}

// --- showing ------------------------------------------------------------------------------

function showForm(pixels) {
  const image = preview.createImageData(SIDE, SIDE);
  for (let i = 0; i < SIDE * SIDE; i++) {
    const v = pixels ? pixels[i] : 0;
    image.data.set([v, v, v, 255], 4 * i);
  }
  preview.putImageData(image, 0, 0);
}

function percent(p) {
  return `${(100 * p).toFixed(1)} %`;
}

function best(probabilities) {
  return probabilities.indexOf(Math.max(...probabilities));
}

function showBars(model) {
  const p = model.probabilities;
  const guess = p ? best(p) : -1;
  model.panel.querySelectorAll(".bars li").forEach((row, digit) => {
    row.classList.toggle("best", digit === guess);
    row.querySelector(".fill").style.width = p ? `${100 * p[digit]}%` : "0";
    row.querySelector(".value").textContent = p ? percent(p[digit]) : "";
  });
  model.panel.querySelector(".guess").textContent = p ? `${guess}` : "";
}

function showStatus() {
  const working = models.filter((m) => m.session);
  if (!working.length) {
    statusLine.textContent = "no model could be loaded: see why below";
  } else if (!form) {
    statusLine.textContent = "draw a digit";
  } else {
    statusLine.textContent = working
      .map((m) => `${m.name}: ${best(m.probabilities)} (${percent(Math.max(...m.probabilities))})`)
      .join(" · ");
  }
  statusLine.classList.toggle("empty", !form);
}

function panelFor(entry) {
  const panel = document.createElement("article");
  panel.className = "model";
  panel.id = `model-${entry.name}`;
  const heading = document.createElement("h2");
  heading.textContent = entry.name;
  const guess = document.createElement("span");
  guess.className = "guess";
  guess.setAttribute("aria-label", `${entry.name}'s guess`);
  heading.append(" ", guess);
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.textContent =
    `test accuracy ${(100 * entry.accuracy).toFixed(2)} % on MNIST's ` +
    `${entry.test_images.toLocaleString("en")} test digits · ` +
    `${entry.parameters.toLocaleString("en")} parameters`;
  const error = document.createElement("p");
  error.className = "error";
  error.hidden = true;
  const bars = document.createElement("ol");
  bars.className = "bars";
  for (let digit = 0; digit < 10; digit++) {
    const row = document.createElement("li");
    row.innerHTML =
      `<span class="digit">${digit}</span>` +
      `<span class="bar"><span class="fill"></span></span><span class="value"></span>`;
    bars.append(row);
  }
  panel.append(heading, meta, error, bars);
  panels.append(panel);
  return panel;
}

function showError(model, message) {
  model.error = message;
  const slot = model.panel.querySelector(".error");
  slot.textContent = message;
  slot.hidden = false;
  model.panel.classList.add("failed");
}

// --- loading ------------------------------------------------------------------------------

async function fetchBytes(file) {
  const response = await fetch(file);
  if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`.trim());
  return new Uint8Array(await response.arrayBuffer());
}

async function load(model) {
  try {
    const session = await ort.InferenceSession.create(await fetchBytes(model.file), {
      executionProviders: ["wasm"],
    });
    const found = `inputs ${session.inputNames.join(", ")}; outputs ${session.outputNames.join(", ")}`;
    if (!session.inputNames.includes(INPUT) || !session.outputNames.includes(OUTPUT)) {
      throw new Error(`not an exported model: want input ${INPUT}, output ${OUTPUT}; has ${found}`);
    }
    model.session = session;
  } catch (error) {
    showError(model, `${model.name}: could not load ${model.file}: ${error.message || error}`);
  }
}

async function start() {
  let entries;
  try {
    const response = await fetch("models.json");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    entries = await response.json();
  } catch (error) {
    statusLine.textContent = `could not read models.json: ${error.message || error}`;
    return;
  }
  for (const entry of entries) {
    models.push({ ...entry, session: null, error: null, probabilities: null, panel: panelFor(entry) });
  }
  await Promise.all(models.map(load));
  showForm(null);
  changed(); // the bars and status of whatever is on the pad (nothing, at first)
  await settled();
}

function settled() {
  return running || shown !== drawn
    ? new Promise((resolve) => waiting.push(resolve))
    : Promise.resolve();
}

window.digitPage = {
  ready: start(),
  settled,
  timings: () => timings,
  // the current drawing predicted once more, for the benchmark: its timings() after
  predictAgain: async () => {
    await settled();
    await update();
  },
  state: () => ({
    status: statusLine.textContent,
    form: form ? Array.from(form) : null,
    models: Object.fromEntries(
      models.map((m) => [m.name, { error: m.error, probabilities: m.probabilities }]),
    ),
  }),
};
