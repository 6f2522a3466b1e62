"""Code written as lines, not as a JSON string: the fenced block a markdown reply
holds code in (a section's code parts, and the code calls of a section drafted as
markdown), its bounds in lines, and the code read back out of it.

Imports core markdown, draft prompting and the providers' grammar tools."""

from __future__ import annotations

from agent.core.markdown import parse
from agent.draft.prompting import CHARS_PER_LINE, lines_for
from agent.providers.grammar import GrammarRules, gbnf_literal

# Code lines a part may run to: three times the lines asked for, at least this many
# (Qwen2.5-Coder-1.5B wrote 22-line models where 11 were asked; twice cut them).
MIN_CODE_LINES = 12
# A line of code at this length was ended by the grammar, not the model: at 100,
# 5 of the 406 code lines of the example's recording (URLs, SQL, call arguments)
# were broken mid-string and did not parse, and their repairs broke again.
CODE_LINE_CHARS = 200
# What a line of code costs a reply's budget on average: fitting counts lines at this.
TYPICAL_LINE = CHARS_PER_LINE + 1


def code_lines_bound(max_chars: int) -> int:
    """The most lines a markdown reply's code block asked for at `max_chars` may run
    to, before any fitting: three times the lines asked for, 12 at least."""
    return max(MIN_CODE_LINES, 3 * lines_for(max_chars))


def fitted_lines(chars: int) -> int:
    """The lines a fitted bound of `chars` holds, at 41 characters a line (4 at least)."""
    return max(4, chars // TYPICAL_LINE)


def fenced(g: GrammarRules, language: str, lines: int) -> str:
    """One fenced block of `language`: 1 to `lines` lines of at most `CODE_LINE_CHARS`,
    none starting with a backtick (the fence ends it)."""
    line = g.rule(
        "code-line",
        g.seq(g.optional(g.seq("[^`\\n]", g.chars(0, CODE_LINE_CHARS - 1, "[^\\n]"))), '"\\n"'),
    )
    fence = gbnf_literal(f"```{language}\n")
    return g.seq(fence, g.repeat(line, 1, lines), '"```\\n"')


def code_reply_lines(max_chars: int, budget: int | None) -> tuple[int, int]:
    """The lines a code call's markdown reply is asked for and held to.

    Asked for as a JSON string's `max_chars` would be (`lines_for`); held, as a
    section's code is, to three times that (12 at least), fitted to `budget`
    at 41 characters a line so the reply ends within max_tokens.
    """
    held = code_lines_bound(max_chars)
    if budget is not None:
        held = min(held, fitted_lines(budget))
    return min(lines_for(max_chars), held), held


def code_reply_grammar(language: str, lines: int) -> str:
    """A GBNF grammar for a reply that is one fenced block of at most `lines` lines."""
    g = GrammarRules()
    g.rules["root"] = fenced(g, language, lines)
    return g.text()


def read_code_reply(text: str) -> str:
    """The code of a reply asked for as one fenced block, its lines as the grammar
    counted them (`rejoined` puts back the lines it ended at their bound).

    The first fenced block (to its closing fence, or to the end of a reply cut
    before it, as markdown reads one); a reply with no fence is all code.
    Servers without a grammar let prose in around the block: it is not code.
    """
    fences = parse(text).fences
    return (fences[0].code if fences else text).strip("\n")


def rejoined(code: str) -> str:
    """Code without the line breaks the grammar forced: a line at `CODE_LINE_CHARS`
    was ended by the bound, and the model wrote on after it on the next line.

    Without a grammar (a cloud model asked for markdown) a line of exactly that
    length is the model's own, and would be joined wrongly: rare enough to leave.
    """
    lines: list[str] = []
    glue = False
    for line in code.split("\n"):
        if glue:
            lines[-1] += line
        else:
            lines.append(line)
        glue = len(line) == CODE_LINE_CHARS
    return "\n".join(lines)
