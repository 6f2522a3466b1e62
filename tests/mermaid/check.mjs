// Parse Mermaid diagrams with Mermaid itself: a JSON list of texts on stdin,
// a JSON list on stdout with null (parses) or the first line of the error.
import DOMPurify from "dompurify";

// Node has no DOM; parsing sanitizes nothing, so pass-through stand-ins do.
DOMPurify.addHook = () => {};
DOMPurify.removeHook = () => {};
DOMPurify.removeHooks = () => {};
DOMPurify.sanitize = (text) => text;
const { default: mermaid } = await import("mermaid");

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const text of JSON.parse(input)) {
  try {
    await mermaid.parse(text);
    results.push(null);
  } catch (error) {
    results.push(String(error.message ?? error).split("\n")[0]);
  }
}
process.stdout.write(JSON.stringify(results));
