"""Display helpers for the training pages: durations, metric numbers, segment colours, setting names and help."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from django import template
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe

register = template.Library()



@register.filter
def duration(value: timedelta | None) -> str:
    """`1h 02m`, `3m 05s`, `12s`; empty for None."""
    if value is None:
        return ""
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


@register.filter
def metric(value) -> str:
    """Four significant digits, whatever the scale (losses, learning rates, ratios)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    return f"{value:.4g}"


@register.filter
def rate(value) -> str:
    """A throughput figure for reading at a glance: thousands grouped (12,480), small ones to three digits (1.52)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


SHADES = 10


def segment_shade(reward, scale: float) -> str:
    """The class of a segment's background, `shade-1` (faint) to `shade-10`, stronger with the reward's magnitude.

    training.css colours `.seg-pos` green and `.seg-neg` red at ten strengths
    (classes, because the Content-Security-Policy allows no `style=""`).
    """
    if not isinstance(reward, (int, float)) or isinstance(reward, bool) or reward == 0 or scale <= 0:
        return ""
    level = max(1, math.ceil(SHADES * min(1.0, abs(reward) / scale)))
    return f"shade-{level}"


@register.simple_tag
def sample_segments(segments) -> str:
    """A generation as spans coloured by each segment's reward, scaled to this sample's largest reward."""
    segments = [s for s in segments or [] if isinstance(s, dict)]
    rewards = [abs(s.get("reward")) for s in segments if isinstance(s.get("reward"), (int, float))]
    scale = max(rewards, default=0.0)
    parts = []
    for segment in segments:
        reward = segment.get("reward")
        sign = "pos" if isinstance(reward, (int, float)) and reward > 0 else "neg" if isinstance(reward, (int, float)) and reward < 0 else "zero"
        title = f"{segment.get('label', '')} {reward:+.3f}" if isinstance(reward, (int, float)) else str(segment.get("label", ""))
        parts.append(
            format_html(
                '<span class="seg seg-{} {}" title="{}">{}</span>',
                sign,
                segment_shade(reward, scale),
                title.strip(),
                segment.get("text", ""),
            )
        )
        toxicity = segment.get("toxicity")
        if isinstance(toxicity, (int, float)):
            # Detox samples: the toxicity of the text up to this sentence, visible without hovering (phones).
            parts.append(format_html('<sub class="seg-tox" title="toxicity up to here">tox {}</sub>', f"{toxicity:.2f}"))
    # Each part was escaped by format_html above.
    return mark_safe("".join(parts))


@register.filter
def run_percent(run) -> int:
    from training.selectors import run_progress_percent

    return run_progress_percent(run)


@register.filter
def run_duration(run):
    from training.selectors import run_duration as duration_of

    return duration_of(run)


@register.filter
def have_rewards(samples) -> bool:
    """Whether any sample was scored (PPO); SFT's samples carry no reward and are shown as plain text."""
    for sample in samples or []:
        if isinstance(getattr(sample, "total_reward", None), (int, float)):
            return True
        for segment in getattr(sample, "segments", None) or []:
            reward = segment.get("reward") if isinstance(segment, dict) else None
            if isinstance(reward, (int, float)) and not isinstance(reward, bool):
                return True
    return False


@register.filter
def break_at_underscores(name) -> str:
    """A setting name that wraps only after its underscores (`eval_batch_size`, never `eval_batch_s ize`)."""
    return mark_safe("_<wbr>".join(conditional_escape(part) for part in str(name).split("_")))


_BACKTICKED = re.compile(r"`([^`]+)`")


@register.filter
def inline_code(text) -> str:
    """Help text with `backticked` words shown as code, the rest escaped."""
    parts = _BACKTICKED.split(str(text or ""))
    # split() alternates plain text and the backticked groups.
    return mark_safe("".join(format_html("<code>{}</code>", part) if index % 2 else conditional_escape(part)
                             for index, part in enumerate(parts)))
