"""Training and generation prompts at a chosen word overlap, and the overlap they realise.

Tuning on a clip binds the training prompt's words to the clip's look: generating with the same words
renders the source style again, generating with no shared words loses the clip's composition. The overlap
r in [0, 1] is the share of the training prompt's content words that the generation prompt keeps.

Rules (deterministic):
- Training prompt: the source style words, then the caption ("a photo of" + "a man is surfing").
- Content words are the words that are not stop words (STOP_WORDS) and not bare punctuation. Every other
  word belongs to the next content word of its part (style or caption), or to the previous one when none
  follows, and goes with it: dropping "surfing" drops "is", dropping "photo" drops "a ... of".
- The generation prompt keeps round(r * n) of the n content words (rounded half up) and drops the others
  in this order, later words first within each group:
    1. the source style words: they pull the render back to the source look;
    2. the source subject, replaced in place by the edit subject (its article stays, "a man" -> "an astronaut");
    3. the remaining caption words, from the end of the caption.
  The subject is dropped whole, so a subject of several content words can drop a little more than asked;
  kept_words and the measured overlap say what was realised.
- The edit subject is always there: while the source subject is kept, the edit subject is written in front
  of it ("an astronaut man"), the way Stable Diffusion prompts name one hybrid subject. When the edit subject
  is the source subject (a style-only edit), the subject is never dropped, so the overlap has a floor above 0.
- An article right before the edit subject agrees with its first letter ("a" -> "an" before a vowel).
- The kept words keep their order; the target style phrase is appended at the end.

The realised overlap is the Jaccard index of the two prompts' content-token sets under CLIP's BPE tokenizer.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from functools import lru_cache

from open_clip.tokenizer import SimpleTokenizer

STOP_WORDS = frozenset({
    "a", "an", "the", "is", "are", "was", "were", "be", "being", "of", "in", "on", "at", "to", "into",
    "onto", "with", "and", "or", "by", "for", "from", "as", "its", "it", "this", "that", "while",
})
VOWELS = "aeiou"


@dataclass(frozen=True)
class PromptPair:
    train_prompt: str
    generation_prompt: str
    overlap_requested: float
    overlap_measured: float
    kept_words: tuple[str, ...]  # content words of the training prompt found in the generation prompt
    dropped_words: tuple[str, ...]  # in the order they were dropped

    def as_record(self) -> dict[str, object]:
        """Plain, JSON-ready fields for the run's log."""
        return {
            "train_prompt": self.train_prompt,
            "generation_prompt": self.generation_prompt,
            "overlap_requested": self.overlap_requested,
            "overlap_measured": self.overlap_measured,
            "kept_words": list(self.kept_words),
            "dropped_words": list(self.dropped_words),
        }


def word_key(word: str) -> str:
    return word.strip(string.punctuation).lower()


def is_content(word: str) -> bool:
    key = word_key(word)
    return bool(key) and key not in STOP_WORDS


def content_words(text: str) -> list[str]:
    return [word_key(word) for word in text.split() if is_content(word)]


@lru_cache(maxsize=1)
def clip_tokenizer() -> SimpleTokenizer:
    """CLIP's BPE tokenizer; its vocabulary ships with open_clip, so this works offline."""
    return SimpleTokenizer()


def content_tokens(text: str, tokenizer: SimpleTokenizer) -> set[int]:
    return {token for word in content_words(text) for token in tokenizer.encode(word)}


def measure_overlap(prompt_a: str, prompt_b: str, tokenizer: SimpleTokenizer | None = None) -> float:
    """Jaccard index of the prompts' content-token sets (stop words and special tokens excluded)."""
    tokenizer = tokenizer or clip_tokenizer()
    tokens_a, tokens_b = content_tokens(prompt_a, tokenizer), content_tokens(prompt_b, tokenizer)
    if not tokens_a and not tokens_b:
        raise ValueError(f"neither '{prompt_a}' nor '{prompt_b}' has a content word; "
                         f"overlap is only defined when a prompt has a word outside the stop words")
    return len(tokens_a & tokens_b) / len(tokens_a | tokens_b)


def find_phrase(words: list[str], phrase: list[str]) -> int:
    keys, phrase_keys = [word_key(w) for w in words], [word_key(w) for w in phrase]
    for start in range(len(words) - len(phrase) + 1):
        if keys[start:start + len(phrase)] == phrase_keys:
            return start
    return -1


def owner_of(position: int, part_units: list[int], units: list[list[int]]) -> int | None:
    """The unit a word goes with: its own, else the next unit of its part, else the previous one."""
    for u in part_units:
        if position in units[u]:
            return u
    following = [u for u in part_units if units[u][0] > position]
    return following[0] if following else (part_units[-1] if part_units else None)


def agree_article(article: str, next_word: str) -> str:
    if article.lower() not in ("a", "an"):
        return article
    agreed = "an" if next_word[:1].lower() in VOWELS else "a"
    return agreed.capitalize() if article[0].isupper() else agreed


def build_prompts(source_caption: str, overlap: float, *, source_subject: str, edit_subject: str,
                  target_style: str = "", source_style: str = "") -> PromptPair:
    """The training prompt and the generation prompt keeping round(overlap * n) of its n content words."""
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap is {overlap}; pass a share of content words between 0 and 1")
    caption, subject = source_caption.split(), source_subject.split()
    edit = edit_subject.split()
    if not caption:
        raise ValueError("source_caption is empty; pass the clip's caption, e.g. 'a man is surfing'")
    if not edit:
        raise ValueError("edit_subject is empty; pass the subject to render, e.g. 'astronaut'")
    if not any(is_content(word) for word in subject):
        raise ValueError(f"source_subject '{source_subject}' has no content word; pass the caption's subject "
                         f"noun, e.g. 'man'")
    subject_start = find_phrase(caption, subject)
    if subject_start < 0:
        raise ValueError(f"source_subject '{source_subject}' is not in the caption '{source_caption}'; "
                         f"pass words exactly as they appear in the caption")
    words = source_style.split() + caption
    style_part, caption_part = range(len(words) - len(caption)), range(len(words) - len(caption), len(words))
    subject_start = caption_part.start + subject_start
    subject_span = range(subject_start, subject_start + len(subject))

    # Units are what gets dropped: each content word, and the subject (with any stop words inside it) as one.
    units = sorted([[p] for p in range(len(words)) if is_content(words[p]) and p not in subject_span]
                   + [list(subject_span)])
    subject_unit = units.index(list(subject_span))
    style_units = [u for u, unit in enumerate(units) if unit[0] in style_part]
    caption_units = [u for u, unit in enumerate(units) if unit[0] in caption_part]
    owners = [owner_of(p, style_units if p in style_part else caption_units, units) for p in range(len(words))]

    same_subject = [word_key(w) for w in edit] == [word_key(w) for w in subject]
    subject_order = [] if same_subject else [subject_unit]
    drop_order = style_units[::-1] + subject_order + [u for u in caption_units[::-1] if u != subject_unit]
    unit_size = [sum(is_content(words[p]) for p in unit) for unit in units]
    n_content = sum(unit_size)
    n_drop = n_content - math.floor(overlap * n_content + 0.5)
    dropped: list[int] = []
    for u in drop_order:
        if sum(unit_size[d] for d in dropped) >= n_drop:
            break
        dropped.append(u)

    generation: list[str] = []
    for p, (word, owner) in enumerate(zip(words, owners)):
        if p == subject_start and not same_subject:
            if generation:
                generation[-1] = agree_article(generation[-1], edit[0])
            generation.extend(edit)
        replaced_subject_keeps_article = owner == subject_unit and p not in subject_span
        if owner is not None and (owner not in dropped or replaced_subject_keeps_article):
            generation.append(word)
    generation.extend(target_style.split())

    train_prompt, generation_prompt = " ".join(words), " ".join(generation)
    kept_words = tuple(word_key(words[p]) for p in range(len(words))
                       if is_content(words[p]) and owners[p] not in dropped)
    dropped_words = tuple(word_key(words[p]) for u in dropped for p in units[u] if is_content(words[p]))
    return PromptPair(train_prompt, generation_prompt, overlap, measure_overlap(train_prompt, generation_prompt),
                      kept_words, dropped_words)
