// Drives a running `ktune ui` in headless Chromium (Debian's package,
// through playwright-core: no browser download) and checks what a person
// would see on every page. Run by tests/ui.rs, which fills the store and
// keeps one experiment changing while this runs.
//
//   node tests/browser/ui.mjs BASE_URL OUT_DIR BEST_TRIAL
//
// Exits 0 when every check passed; otherwise prints what failed and exits 1.
// Saves a screenshot of each page under OUT_DIR.
import { chromium } from "playwright-core";

const [base, out, best] = process.argv.slice(2);
if (!base || !out || !best) {
  console.error("usage: ui.mjs BASE_URL OUT_DIR BEST_TRIAL");
  process.exit(2);
}
const executablePath = process.env.KTUNE_CHROMIUM || "/usr/bin/chromium";

function check(condition, what) {
  if (!condition) { throw new Error(`check failed: ${what}`); }
  console.log(`ok: ${what}`);
}

const browser = await chromium.launch({
  executablePath,
  // Root in a container has no user namespaces for Chromium's sandbox.
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
let failed = false;
const errors = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") { errors.push(m.text()); } });
  const shot = (name) => page.screenshot({ path: `${out}/${name}.png`, fullPage: true });

  // Experiments.
  await page.goto(`${base}/`);
  const home = await page.textContent("main");
  check(home.includes("demo") && home.includes("live"), "the list shows both experiments");
  check(home.includes("120 trials"), "the finished experiment's trial count");
  check((await page.locator(`a:text-is("${best}")`).count()) >= 1, `the best trial ${best} is named`);
  check((await page.locator("svg.spark").count()) >= 1, "a best-so-far sparkline");
  await shot("experiments");

  // Experiment: history, curves, parallel coordinates, importance, table, spec.
  await page.goto(`${base}/experiments/demo`);
  check((await page.locator("#history path.trial").count()) === 120, "one history mark per trial");
  check((await page.locator("#history path.best").count()) === 1, "a best-so-far line");
  check((await page.locator("#best a").textContent()) === best, "the best trial heads the page");
  check((await page.locator("svg.curves path.curve, section#curves path.curve").count()) > 0, "learning curves");
  check((await page.locator("svg.parallel path.line").count()) > 0, "parallel coordinates");
  check((await page.locator("table.importance tr").count()) >= 1, "parameter importance");
  check((await page.textContent("#spec")).includes("objectiveMetricName"), "the spec as YAML");
  await shot("experiment");

  // Brushing the objective axis filters the table on the server.
  const before = await page.textContent("#trials .exports");
  check(before.includes("120 matching"), "the table counts every trial");
  await page.locator("svg.parallel").scrollIntoViewIfNeeded();
  const axis = page.locator('svg.parallel g[data-objective="1"] path').first();
  const box = await axis.boundingBox();
  check(box !== null, "the objective axis is drawn");
  const x = box.x + box.width / 2;
  await page.mouse.move(x, box.y + box.height * 0.55);
  await page.mouse.down();
  await page.mouse.move(x, box.y + box.height * 0.8, { steps: 5 });
  await page.mouse.move(x, box.y + box.height + 4, { steps: 5 });
  await page.mouse.up();
  await page.waitForSelector("#trials p.selection", { timeout: 10000 });
  const after = await page.textContent("#trials .exports");
  const matching = parseInt(after, 10);
  check(matching > 0 && matching < 120, `the brushed table shows fewer trials (${matching} of 120)`);
  check(new URL(page.url()).searchParams.has("brush"), "the selection is in the address");
  check((await page.locator("svg.parallel path.line.dim").count()) > 0, "lines outside the selection are dimmed");
  const rows = await page.locator("#trials tbody tr").count();
  check(rows === Math.min(matching, 50), "the table's rows are the selected trials");
  const sortLink = await page.locator("#trials thead a").first().getAttribute("href");
  check(sortLink.startsWith("/experiments/demo?") && sortLink.includes("brush="), `the reloaded table's links stay on this page and keep the selection (${sortLink})`);
  await shot("experiment-brushed");
  await Promise.all([page.waitForNavigation(), page.click("#clear-brush")]);
  check((await page.locator("#trials p.selection").count()) === 0, "the selection is cleared");
  check((await page.textContent("#trials .exports")).includes("120 matching"), "clearing the selection shows every trial");

  // Trial: parameters, state, metric curves, output.
  await page.goto(`${base}/experiments/demo/trials/${best}`);
  const bestPage = await page.textContent("main");
  check(bestPage.includes(best) && bestPage.includes("Succeeded"), "the trial page names the trial and its state");
  await page.goto(`${base}/experiments/demo/trials/t-003`);
  check((await page.locator("table.params td").count()) >= 2, "the trial's parameters");
  check((await page.locator("#metrics svg path.curve").count()) >= 1, "the trial's metric curve");
  check((await page.textContent("#logs")).includes("hello"), "the trial's output");
  await shot("trial");

  // Live: the running experiment's page changes without a navigation.
  await page.goto(`${base}/experiments/live`);
  await page.waitForFunction(() => document.getElementById("live")?.textContent === "live", null, { timeout: 10000 });
  await page.evaluate(() => { window.__notReloaded = true; });
  const counts = await page.textContent("#counts");
  await page.waitForFunction((c) => document.getElementById("counts")?.textContent !== c, counts, { timeout: 15000 });
  check(await page.evaluate(() => window.__notReloaded === true), "a live update arrived without reloading the page");
  check((await page.locator("#history path.trial").count()) >= 1, "the running experiment's history");
  await shot("experiment-live");

  // A running trial's output grows on the page as the trial writes it.
  await page.goto(`${base}/experiments/live/trials/t-006`);
  await page.evaluate(() => { window.__notReloaded = true; });
  const logBefore = await page.textContent("#log");
  await page.waitForFunction((b) => (document.getElementById("log")?.textContent || "").length > b.length, logBefore, { timeout: 15000 });
  check((await page.textContent("#log")).startsWith(logBefore), "new output is appended to what was shown");
  check(await page.evaluate(() => window.__notReloaded === true), "the output is followed without reloading the page");
  await shot("trial-running");

  // An empty state reads as one.
  await page.goto(`${base}/experiments/empty`);
  check((await page.locator("p.empty").count()) >= 1, "an experiment without trials says so");
  await shot("experiment-empty");

  check(errors.length === 0, `no script errors (${errors.join("; ")})`);
} catch (e) {
  failed = true;
  console.error(String(e && e.stack ? e.stack : e));
  if (errors.length) { console.error(`script errors on the page: ${errors.join("; ")}`); }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
