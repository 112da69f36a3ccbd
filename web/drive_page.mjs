// Drive the draw-a-digit page in the system's headless Chromium through playwright-core
// (no browser download): what the browser test and the page benchmark use.
//
//   node web/drive_page.mjs URL CHROMIUM
//
// Every request that is not to URL's own origin is refused and reported, so the page is
// seen working with no network. Once the page is ready it prints one JSON line
// {ready, blocked, chromium}; then it reads one JSON command a line on stdin and answers
// each with one JSON line on stdout:
//   {"op": "draw", "strokes": [[[x, y], ...], ...]}  pointer strokes in pad pixels; then the state
//   {"op": "clear"}                                 clicks Clear; then the state
//   {"op": "state"}                                 status, 28x28 form, probabilities, pad PNG
//   {"op": "offline"}                               cuts the network off entirely
//   {"op": "time", "repeats": n}                    n predictions of the current drawing: ms each
//   {"op": "quit"}
// An error answers {"error": message}.

import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

// the flags that work on these machines; playwright adds --headless and a fresh profile
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const [url, executablePath] = process.argv.slice(2);
const origin = new URL(url).origin;
const blocked = [];
const problems = []; // the page's uncaught errors and console errors

const browser = await chromium.launch({ executablePath, args: FLAGS, headless: true });
const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
await context.route("**/*", (route) => {
  const requested = route.request().url();
  if (new URL(requested).origin === origin) return route.continue();
  blocked.push(requested);
  return route.abort("internetdisconnected");
});
const page = await context.newPage();
page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
page.on("console", (message) => {
  if (message.type() === "error") problems.push(`console: ${message.text()}`);
});

function reply(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function state() {
  const png = await page.$eval("#pad", (pad) => pad.toDataURL("image/png"));
  return { ...(await page.evaluate(() => window.digitPage.state())), png, problems };
}

async function settle() {
  await page.evaluate(() => window.digitPage.settled());
}

async function draw(strokes) {
  // pad pixels to the page's coordinates: the pad's content box, inside its border
  const box = await page.locator("#pad").boundingBox();
  const pad = await page.$eval("#pad", (p) => ({
    left: p.clientLeft,
    top: p.clientTop,
    xScale: p.clientWidth / p.width,
    yScale: p.clientHeight / p.height,
  }));
  const at = ([x, y]) => [box.x + pad.left + x * pad.xScale, box.y + pad.top + y * pad.yScale];
  for (const points of strokes) {
    await page.mouse.move(...at(points[0]));
    await page.mouse.down();
    for (const point of points.slice(1)) await page.mouse.move(...at(point));
    await page.mouse.up();
  }
  await settle();
}

async function handle(command) {
  switch (command.op) {
    case "draw":
      await draw(command.strokes);
      return state();
    case "clear":
      await page.click("#clear");
      await settle();
      return state();
    case "state":
      return state();
    case "offline":
      await context.setOffline(true);
      return { offline: true };
    case "time":
      return {
        timings: await page.evaluate(async (repeats) => {
          const runs = [];
          for (let i = 0; i < repeats; i++) {
            await window.digitPage.predictAgain();
            runs.push(window.digitPage.timings());
          }
          return runs;
        }, command.repeats),
      };
    default:
      throw new Error(`unknown op ${JSON.stringify(command.op)}`);
  }
}

try {
  await page.goto(url);
  await page.evaluate(() => window.digitPage.ready);
  reply({ ready: true, blocked, chromium: browser.version(), problems });
} catch (error) {
  reply({ error: `${error.message}`.split("\n")[0], blocked, problems });
  await browser.close();
  process.exit(1);
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  if (command.op === "quit") break;
  try {
    reply(await handle(command));
  } catch (error) {
    reply({ error: `${error.message}`.split("\n")[0] });
  }
}
await browser.close();
