"""The annotation pages' repeated parts, built in Python (annotation/templatetags/item_markup.py), against the
template loops they replaced: the same elements, attributes and escaped text."""

import itertools
import json
import re

import pytest
from django.template import engines

from annotation.templatetags.item_markup import comparison_questions_html, passages_html
from annotation.views.annotate import _passage_rows, comparison_questions

# The template loop the tag replaced (templates/annotation/annotate/_passages.html before issue 9's last round).
REFERENCE = """{% load l10n %}{% localize off %}
{% for passage in passages %}
<section class="passage" aria-labelledby="passage-{{ passage.number }}-title">
  <h3 id="passage-{{ passage.number }}-title"><span class="passage-no">Passage {{ passage.number }}</span> {% if clickable %}<span class="sent sent-title" role="button" tabindex="0" data-p="{{ passage.number }}" data-s="0"><span class="vh">Passage {{ passage.number }}, title: </span>{{ passage.title }}</span>{% else %}{{ passage.title }}{% endif %}</h3>
  <p class="sentences">{% for number, sentence in passage.sentences %}<span class="sent"{% if clickable %} role="button" tabindex="0"{% endif %} data-p="{{ passage.number }}" data-s="{{ number }}"><span class="sent-no"><span class="vh">Passage {{ passage.number }}, sentence </span>{{ number }}</span> {{ sentence }}</span> {% endfor %}</p>
</section>
{% empty %}
<p class="muted">This example has no passages.</p>
{% endfor %}
{% endlocalize %}"""

# The loop of the comparison page's questions that the tag replaced (templates/annotation/annotate/comparison.html).
QUESTIONS_REFERENCE = """{% for q in questions %}
        <li class="pair{% if q.answer %} is-answered{% endif %}" role="radiogroup" aria-labelledby="pair-{{ q.index }}-label" data-index="{{ q.index }}" data-a="{{ q.a }}" data-b="{{ q.b }}">
          <span class="pair-label" id="pair-{{ q.index }}-label"><span class="pair-no" aria-hidden="true">{{ q.index|add:1 }}</span> <span class="vh">Response</span> <strong>{{ q.a }}</strong> vs <strong>{{ q.b }}</strong></span>
          {% for value, key, label in q.options %}
          <label class="pair-option">
            <input type="radio" name="pair-{{ q.index }}" value="{{ value }}" data-key="{{ key }}"{% if q.answer == value %} checked{% endif %}>
            <kbd aria-hidden="true">{{ key }}</kbd> {{ label }}
          </label>
          {% endfor %}
        </li>
        {% endfor %}"""


def _between_tags(html: str) -> str:
    """Whitespace between two tags is not content (the loop left blank lines between sections)."""
    return re.sub(r">\s+<", "><", html.strip())


@pytest.fixture(scope="module")
def dev_passages(qa_feedback_dir):
    return [record["passages"] for record in json.loads((qa_feedback_dir / "dev_feedback.json").read_text())]


@pytest.mark.parametrize("clickable", [True, False])
def test_every_dev_examples_passages_render_as_the_template_loop_did(dev_passages, clickable):
    reference = engines["django"].from_string(REFERENCE)
    for passages in dev_passages:
        rows = _passage_rows(passages)
        assert _between_tags(passages_html(rows, clickable)) == _between_tags(reference.render({"passages": rows, "clickable": clickable}))


def test_titles_and_sentences_are_escaped_and_numbered_from_one():
    rows = _passage_rows([["<b>Title</b> & co", 'He said "hi" <script>x</script>', "Second 'one'"], ["Only a title"]])
    html = passages_html(rows, True)
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;b&gt;Title&lt;/b&gt; &amp; co" in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "&quot;hi&quot;" in html and "&#x27;one&#x27;" in html
    assert re.findall(r'data-p="(\d+)" data-s="(\d+)"', html) == [("1", "0"), ("1", "1"), ("1", "2"), ("2", "0")]
    plain = passages_html(rows, False)
    assert 'role="button"' not in plain and "Passage 2</span> Only a title</h3>" in plain


def test_an_example_without_passages_says_so():
    assert passages_html([], True) == '<p class="muted">This example has no passages.</p>\n'


def test_the_passages_include_uses_the_tag():
    template = engines["django"].get_template("annotation/annotate/_passages.html")
    html = template.render({"passages": _passage_rows([["T", "S one"]]), "clickable": True})
    assert 'role="button" tabindex="0" data-p="1" data-s="1"' in html and "S one" in html


def test_the_comparison_questions_render_as_the_template_loop_did_for_every_answer():
    reference = engines["django"].from_string(QUESTIONS_REFERENCE)
    # Each question unanswered or answered each way (a draft keeps None for an unanswered question).
    for values in itertools.product([None, 0, 1, 2], repeat=2):
        preference = [*values, values[0], None, values[1], 2]
        questions = comparison_questions(preference)
        html = comparison_questions_html(questions)
        assert _between_tags(html) == _between_tags(reference.render({"questions": questions}))
        assert html.count(" checked") == sum(value is not None for value in preference)
        assert html.count('class="pair is-answered"') == sum(value is not None for value in preference)


def test_an_items_urls_are_the_ones_its_views_reverse_to():
    from django.urls import reverse

    from annotation.views.annotate import ITEM_ACTIONS, item_urls

    for pk in (1, 40321):
        urls = item_urls(pk)
        assert urls["page"] == reverse("annotation:annotate", args=[pk])
        assert {action: urls[action] for action in ITEM_ACTIONS} == {
            action: reverse(f"annotation:{name}", args=[pk]) for action, name in ITEM_ACTIONS.items()
        }


def test_site_urls_are_reversed_once_per_name_and_prefix(monkeypatch):
    from django.urls import reverse, set_script_prefix

    from annotation.templatetags import site_urls

    site_urls._reversed.cache_clear()
    calls = []
    monkeypatch.setattr(site_urls, "reverse", lambda name, urlconf=None: calls.append(name) or reverse(name, urlconf=urlconf))
    template = engines["django"].from_string("{% load site_urls %}{% site_url 'home' %} {% site_url 'annotation:my_work' %}")
    assert template.render({}) == template.render({}) == f"{reverse('home')} {reverse('annotation:my_work')}"
    assert calls == ["home", "annotation:my_work"]
    try:
        set_script_prefix("/granary/")  # served under a prefix: other URLs
        assert template.render({}) == "/granary/ /granary/annotation/work/"
    finally:
        set_script_prefix("/")
    site_urls._reversed.cache_clear()
