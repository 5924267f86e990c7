"""Training and generation prompts at a chosen overlap, and the overlap they realise.

Tuning on a clip binds the training prompt's words to the clip's look: generating with the same words renders
the source style again, generating with no shared words loses the clip's composition. The overlap r in [0, 1]
is how much of the caption (besides its subject) the generation prompt keeps.

Rules (deterministic, tested in tests/test_prompts.py):
- The training prompt is the caption as written; `source_style` (e.g. "a photo of"), only when given, is
  written in front of it. The source style never appears in a generation prompt.
- The subject (`source_subject`, words exactly as in the caption) is always replaced by the edit subject, in
  place, keeping its article ("a man" -> "an astronaut"). No hybrid ("a panda man") is made: write the edit
  subject you want ("panda man") to get one. An edit subject equal to the source subject is a style-only edit.
- The rest of the caption is split into phrases that are kept or dropped whole, so no phrase is cut:
  a run of content words not broken by punctuation is one phrase ("big wave", "birthday hat"); function words
  (STOP_WORDS: articles, "is", prepositions...) go with the phrase after them ("on the grass", "is rolling");
  a phrase followed by an article joins with its object ("wearing a birthday hat", "surfing a big wave");
  words beside the subject in its run are its modifiers ("red" in "a red ball", subject "ball").
- Phrases are dropped in this order: the subject's modifiers (they describe the source subject), then the
  others from the end of the caption. Keeping the first k of the N phrases in the reverse order gives the
  caption's N + 1 overlap levels: level k's overlap is the share of the caption's non-subject content words
  it keeps, so level 0 is 0.0 ("an astronaut in clip art style") and level N is 1.0 ("an astronaut is
  surfing in clip art style"). A caption that is only its subject has the one level 1.0.
- A requested overlap picks the nearest level (the higher on a tie); `overlap_levels` lists a caption's
  levels, so a search over `choice(<levels>)` never renders the same prompt twice.
- Articles agree with the word after them ("a" -> "an" before a vowel); trailing punctuation of the caption
  part is dropped; the target style phrase is appended.

`overlap_measured` is the realised level; `token_jaccard` is the Jaccard index of both prompts' content
tokens under CLIP's BPE tokenizer (the two prompts' whole-text similarity, source style included).

List a caption's levels and prompts (what to put in a search space):

    python -m tav.prompts "a man is surfing" --subject man --edit astronaut --style "in clip art style"
"""

from __future__ import annotations

import argparse
import json
import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Sequence

from open_clip.tokenizer import SimpleTokenizer

ARTICLES = frozenset({"a", "an", "the"})
PREPOSITIONS = frozenset({
    "of", "in", "on", "at", "to", "into", "onto", "with", "by", "for", "from", "across", "over", "under",
    "through", "along", "around", "behind", "near", "above", "below", "past", "toward", "towards", "beside",
    "between", "inside", "outside", "beneath", "underneath", "against", "among", "upon", "within", "without",
})
STOP_WORDS = ARTICLES | PREPOSITIONS | frozenset({
    "is", "are", "was", "were", "be", "being", "and", "or", "as", "its", "it", "this", "that", "while",
    "his", "her", "their",
})
VOWELS = "aeiou"
BREAKS = ",;:."  # punctuation that ends a phrase


@dataclass(frozen=True)
class PromptPair:
    train_prompt: str
    generation_prompt: str
    overlap_requested: float
    overlap_measured: float  # the level realised: share of the caption's non-subject content words kept
    token_jaccard: float  # Jaccard index of the two prompts' CLIP content tokens
    kept_words: tuple[str, ...]  # non-subject content words of the caption kept, in caption order
    dropped_words: tuple[str, ...]  # in the order they were dropped

    def as_record(self) -> dict[str, object]:
        """Plain, JSON-ready fields for the run's log."""
        return {
            "train_prompt": self.train_prompt,
            "generation_prompt": self.generation_prompt,
            "overlap_requested": self.overlap_requested,
            "overlap_measured": self.overlap_measured,
            "token_jaccard": self.token_jaccard,
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


def agree_article(article: str, next_word: str) -> str:
    if article.lower() not in ("a", "an"):
        return article
    agreed = "an" if next_word[:1].lower() in VOWELS else "a"
    return agreed.capitalize() if article[0].isupper() else agreed


@dataclass(frozen=True)
class Caption:
    """A caption split into its subject and the phrases the overlap keeps or drops."""

    words: list[str]
    subject: range  # positions of the source subject
    owner: list[int | None]  # per word: its phrase (index into phrases), None for the subject's own words
    phrases: list[list[int]]  # content-word positions of each phrase, in drop order

    @property
    def n_content(self) -> int:
        return sum(len(p) for p in self.phrases)

    def share(self, n_kept: int) -> float:
        """The overlap of the level that keeps the last `n_kept` phrases of the drop order."""
        if not self.n_content:
            return 1.0
        return sum(len(p) for p in self.phrases[len(self.phrases) - n_kept:]) / self.n_content


def split_caption(caption: str, source_subject: str) -> Caption:
    words, subject = caption.split(), (source_subject or "").split()
    if not words:
        raise ValueError("data.prompt (the caption) is empty; write what the clip shows, e.g. 'a man is surfing'")
    if not any(is_content(word) for word in subject):
        raise ValueError(f"prompts.source_subject is '{source_subject}'; name the caption's subject (a word that "
                         f"is not a stop word), e.g. prompts.source_subject=man for 'a man is surfing'")
    start = find_phrase(words, subject)
    if start < 0:
        raise ValueError(f"prompts.source_subject '{source_subject}' is not in the caption '{caption}'; "
                         f"write the subject exactly as it appears in data.prompt")
    span = range(start, start + len(subject))

    # Runs of content words (the subject counts as content) not broken by punctuation.
    runs: list[list[int]] = []
    for p, word in enumerate(words):
        if not (is_content(word) or p in span):
            continue
        # Words after the subject start their own run: its modifiers come before it ("a red ball").
        joins = (runs and runs[-1][-1] == p - 1 and words[p - 1][-1:] not in BREAKS
                 and (p in span or p - 1 != span[-1]))
        runs.append(runs.pop() + [p]) if joins else runs.append([p])
    subject_run = next(i for i, run in enumerate(runs) if span.start in run)

    # A phrase followed directly by an article takes the next run as its object ("wearing a birthday hat").
    groups: list[list[int]] = []
    for i, run in enumerate(runs):
        previous = runs[i - 1] if i else None
        between = [word_key(w) for w in words[previous[-1] + 1:run[0]]] if previous else []
        takes_object = (groups and i - 1 != subject_run and i != subject_run and between
                        and between[0] in ARTICLES and words[previous[-1]][-1:] not in BREAKS)
        groups.append(groups.pop() + run) if takes_object else groups.append(list(run))
    subject_group = next(g for g, group in enumerate(groups) if span.start in group)
    modifiers = [p for p in groups[subject_group] if p not in span]
    others = [g for g in range(len(groups)) if g != subject_group]
    phrases = ([modifiers] if modifiers else []) + [groups[g] for g in reversed(others)]

    content_owner = {p: i for i, phrase in enumerate(phrases) for p in phrase}
    owner: list[int | None] = []
    for p in range(len(words)):
        if p in span:
            owner.append(None)
        elif p in content_owner:
            owner.append(content_owner[p])
        else:  # a function word goes with the next content word's phrase (the subject's: always kept)
            following = [q for q in range(p + 1, len(words)) if q in span or q in content_owner]
            preceding = [q for q in range(p) if q in span or q in content_owner]
            anchor = following[0] if following else preceding[-1]
            in_subject_run = anchor in span or anchor in modifiers
            owner.append(None if in_subject_run else content_owner[anchor])
    return Caption(words, span, owner, phrases)


def overlap_levels(caption: str, source_subject: str) -> list[float]:
    """The caption's distinct overlap levels, ascending: 0.0 ... 1.0, one per number of phrases kept."""
    split = split_caption(caption, source_subject)
    return sorted({split.share(k) for k in range(len(split.phrases) + 1)})


def build_prompts(source_caption: str, overlap: float, *, source_subject: str, edit_subject: str,
                  target_style: str = "", source_style: str = "") -> PromptPair:
    """The training prompt and the generation prompt at the level nearest to `overlap` (see the module doc)."""
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"prompts.overlap is {overlap}; pass a share between 0 and 1, e.g. one of the levels "
                         f"that `python -m tav.prompts` lists")
    edit = (edit_subject or "").split()
    if not edit:
        raise ValueError("prompts.edit_subjects holds an empty subject; write the subject to render, e.g. astronaut")
    split = split_caption(source_caption, source_subject)
    words, span = split.words, split.subject
    levels = [(split.share(k), k) for k in range(len(split.phrases) + 1)]
    share, n_kept = min(levels, key=lambda level: (abs(level[0] - overlap), -level[0]))
    dropped = set(range(len(split.phrases) - n_kept))
    same_subject = [word_key(w) for w in edit] == [word_key(words[p]) for p in span]

    generation: list[str] = []
    for p, word in enumerate(words):
        if p in span:
            if same_subject:
                generation.append(word)
            elif p == span.start:
                tail = words[span[-1]][len(words[span[-1]].rstrip(string.punctuation)):]
                generation.extend([*edit[:-1], edit[-1] + tail])
        elif split.owner[p] not in dropped:
            generation.append(word)
    generation = [agree_article(w, generation[i + 1]) if i + 1 < len(generation) else w
                  for i, w in enumerate(generation)
                  # an edit subject written with its article ("an astronaut") replaces the caption's
                  if not (word_key(w) in ARTICLES and i + 1 < len(generation) and word_key(generation[i + 1]) in ARTICLES)]
    if generation:
        generation[-1] = generation[-1].rstrip(BREAKS)
    generation_prompt = " ".join([*generation, *target_style.split()])
    train_prompt = " ".join([*source_style.split(), *words])
    kept = tuple(word_key(words[p]) for p in sorted(q for i, ph in enumerate(split.phrases) if i not in dropped
                                                   for q in ph))
    dropped_words = tuple(word_key(words[p]) for i in sorted(dropped) for p in split.phrases[i])
    return PromptPair(train_prompt, generation_prompt, overlap, share,
                      measure_overlap(train_prompt, generation_prompt), kept, dropped_words)


def level_prompts(caption: str, *, source_subject: str, edit_subject: str, target_style: str = "",
                  source_style: str = "") -> list[PromptPair]:
    """One prompt pair per overlap level of the caption, ascending."""
    return [build_prompts(caption, level, source_subject=source_subject, edit_subject=edit_subject,
                          target_style=target_style, source_style=source_style)
            for level in overlap_levels(caption, source_subject)]


def prompts_by_level(caption: str, overlaps: Sequence[float], *, source_subject: str, edit_subjects: Sequence[str],
                     target_style: str = "", source_style: str = "") -> dict[float, list[str]]:
    """The generation prompts (one per edit subject) each requested overlap renders, keyed by the caption level it
    lands on, ascending: overlaps that land on one level render the same prompts."""
    by_level: dict[float, list[str]] = {}
    for overlap in overlaps:
        pairs = [build_prompts(caption, overlap, source_subject=source_subject, edit_subject=subject,
                               target_style=target_style, source_style=source_style) for subject in edit_subjects]
        by_level[pairs[0].overlap_measured] = [pair.generation_prompt for pair in pairs]
    return dict(sorted(by_level.items()))


def search_choice(levels: Sequence[float]) -> str:
    """The levels as a search-space entry, rounded no further than keeps them apart: choice(0.0, 0.5, 1.0)."""
    for digits in range(2, 7):
        rounded = [round(level, digits) for level in levels]
        if len(set(rounded)) == len(levels):
            return "choice(" + ", ".join(repr(float(r)) for r in rounded) + ")"
    return "choice(" + ", ".join(repr(level) for level in levels) + ")"


def realised_config(config: dict, prompt_record: Mapping) -> dict:
    """The run config as rendered: the realised prompts and overlap under `prompts`, and no validation.prompts
    where prompts.overlap replaced them (they were never rendered)."""
    config = json.loads(json.dumps(config, default=str))
    if not prompt_record:
        return config
    prompts = config.setdefault("prompts", {})
    prompts.update({k: v for k, v in prompt_record.items()
                    if k in ("train_prompt", "generation_prompts", "overlap_measured", "overlap_levels")})
    if prompts.get("overlap") is not None:
        config.get("validation", {}).pop("prompts", None)
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="List a caption's overlap levels and the prompts they render.")
    parser.add_argument("caption", help="the clip's caption (data.prompt), e.g. 'a man is surfing'")
    parser.add_argument("--subject", required=True, help="prompts.source_subject: the caption's subject words")
    parser.add_argument("--edit", required=True, help="one of prompts.edit_subjects")
    parser.add_argument("--style", default="", help="prompts.target_style, e.g. 'in clip art style'")
    parser.add_argument("--source-style", default="", help="prompts.source_style (prepended to the training prompt)")
    args = parser.parse_args(argv)
    try:
        pairs = level_prompts(args.caption, source_subject=args.subject, edit_subject=args.edit,
                              target_style=args.style, source_style=args.source_style)
    except ValueError as error:
        parser.exit(1, f"tav.prompts: {error}\n")
    print(f"training prompt: {pairs[0].train_prompt}")
    for pair in pairs:
        print(f"overlap {pair.overlap_measured:.3f}: {pair.generation_prompt}")
    print(f"search space line:  prompts.overlap: {search_choice([p.overlap_measured for p in pairs])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
