"""The repeated parts of the annotation pages, built in Python rather than with template loops.

Opening an item renders them on every request, and a template loop costs about
ten lookups per element (issue 9): an example's 20-40 passage sentences were a
tenth of opening an item (0.55 ms of 5-7 ms), a comparison's six questions
with three answers each about as much. These build the same markup in about a
tenth of the time; tests/annotation/test_item_markup.py holds the template
loops they replaced and compares the two.
"""

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.simple_tag
def passages_html(passages: list[dict], clickable: bool = False) -> SafeString:
    """One numbered button per sentence: passage P, sentence S, both 1-based, are the `data-p` and `data-s`
    that the page's scripts read (sentence 0: the title).

    `passages`: rows of {"number", "title", "sentences": [(number, text), ...]} (views/annotate.py)."""
    if not passages:
        return mark_safe('<p class="muted">This example has no passages.</p>\n')
    button = ' role="button" tabindex="0"' if clickable else ""
    parts = []
    for passage in passages:
        p = passage["number"]
        title = escape(passage["title"])
        if clickable:
            heading = (f'<span class="sent sent-title" role="button" tabindex="0" data-p="{p}" data-s="0">'
                       f'<span class="vh">Passage {p}, title: </span>{title}</span>')
        else:
            heading = title
        sentences = "".join(
            f'<span class="sent"{button} data-p="{p}" data-s="{s}"><span class="sent-no"><span class="vh">Passage {p},'
            f' sentence </span>{s}</span> {escape(text)}</span> '
            for s, text in passage["sentences"]
        )
        parts.append(
            f'<section class="passage" aria-labelledby="passage-{p}-title">\n'
            f'  <h3 id="passage-{p}-title"><span class="passage-no">Passage {p}</span> {heading}</h3>\n'
            f'  <p class="sentences">{sentences}</p>\n'
            "</section>\n"
        )
    return mark_safe("".join(parts))


@register.simple_tag
def comparison_questions_html(questions: list[dict]) -> SafeString:
    """The six pairwise questions, a radio group each, with the draft's answers checked.

    `questions`: rows of {"index", "a", "b", "answer", "options": [(value, key, label), ...]} (views/annotate.py).
    """
    parts = []
    for q in questions:
        i, a, b = q["index"], escape(q["a"]), escape(q["b"])
        options = "".join(
            f'\n          <label class="pair-option">\n'
            f'            <input type="radio" name="pair-{i}" value="{escape(value)}" data-key="{escape(key)}"'
            f'{" checked" if q["answer"] == value else ""}>\n'
            f'            <kbd aria-hidden="true">{escape(key)}</kbd> {escape(label)}\n'
            f"          </label>"
            for value, key, label in q["options"]
        )
        parts.append(
            f'\n        <li class="pair{" is-answered" if q["answer"] else ""}" role="radiogroup" aria-labelledby="pair-{i}-label"'
            f' data-index="{i}" data-a="{a}" data-b="{b}">\n'
            f'          <span class="pair-label" id="pair-{i}-label"><span class="pair-no" aria-hidden="true">{i + 1}</span>'
            f' <span class="vh">Response</span> <strong>{a}</strong> vs <strong>{b}</strong></span>{options}\n'
            "        </li>"
        )
    return mark_safe("".join(parts))
