"""Train ``guardrails/detectors/data/harmful_model.npz``: the harmful-request model.

Run: ``python -m bulwark.evals.train_harmful_model [--no-write]``. Deterministic (fixed seed,
stable hashes, full-batch training), numpy only; about a minute on two busy cores.

Model: :mod:`bulwark.guardrails.detectors.harmful` (hashed n-grams of
:mod:`jailbreak_model` plus category-lexicon features), a class-balanced logistic regression
for harmful vs benign (the jailbreak model's trainer, :func:`train_jailbreak_model.train`)
and a softmax regression over the same features for the category, trained on the harmful
rows only.

Data (``evals/datasets/``, licenses in its README):

* harmful: ``harmful_dev.jsonl`` (AdvBench, MIT; categories assigned here by
  :data:`CATEGORY_RULES`, keyword rules used for training only) and
  ``harmful_written_dev.jsonl`` (written for this project, other phrasings, with categories);
* benign: ``benign_dev.jsonl`` (BFCL questions, Apache-2.0), ``benign_tricky_dev.jsonl``,
  ``benign_harmlike_dev.jsonl``, ``benign_harmlike_written_dev.jsonl`` and
  ``benign_multilingual_dev.jsonl`` (written for this project), the written sentence pools of
  the jailbreak trainer, and benign requests in the harmful sets' own templates ("Write a
  tutorial on how to ...", "Write a persuasive article arguing that ...") made here from
  :data:`BENIGN_TOPICS` and :data:`BENIGN_CLAIMS`, so that the template words are not what the
  model learns;
* every request whose action can be cut out is re-asked in other frames (:data:`FRAMES`:
  questions, behaviour-benchmark asks, noun phrases, polite, slang; one copy with a typo),
  harmful and benign alike;
* held out, never trained on: :data:`HELDOUT_SETS`.

Reported, never train-on-test:

1. 5-fold cross-validation over every set (generated rows are folded by topic): recall per
   harmful set and FP per benign set at ``harmful.BLOCK_THRESHOLD``, a threshold sweep,
   category accuracy, and the same figures for the rail as a whole (this model OR the
   toxicity rules' ``harmful_request``).
2. Generalisation: trained WITHOUT the two written sets, scored on them.
3. Held out: the final model scored on :data:`HELDOUT_SETS` (``--heldout-only`` does just
   this, in ~25 s: the quick measure for trying an idea).
4. The final model, trained on every row but the held-out sets, is written as int16-quantised
   weights.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
import zlib
from pathlib import Path

import numpy as np

from bulwark.evals import train_jailbreak_model as tj
from bulwark.guardrails.detectors import harmful as hm
from bulwark.guardrails.detectors.toxicity import detect_toxicity

DATA = Path(__file__).resolve().parent / "datasets"
OUT = Path(hm.__file__).with_name("data") / "harmful_model.npz"
SEED = 20250115
BITS = 13
L2 = 3e-5
ITERS = 200
LR = 0.05
FOLDS = 5
QUANT = 32000  # int16 weights: round(w / scale), |int| <= QUANT
HARMFUL_SETS = ("harmful_dev", "harmful_written_dev")
BENIGN_SETS = ("benign_dev", "benign_tricky_dev", "benign_harmlike_dev", "benign_harmlike_written_dev",
               "benign_multilingual_dev")
HELDOUT_SETS = ("harmful_heldout_dev", "benign_heldout_dev")
"""Never trained on: written after the model's first version in phrasings unlike both training
sets (HarmBench-style asks, noun phrases, polite/indirect, slang, typos) and scored only by the
final model, as the honest figure of generalisation to unseen phrasings."""
WRITTEN_SETS = ("harmful_written_dev", "benign_harmlike_written_dev")
HARD_SETS = ("benign_harmlike_dev", "benign_harmlike_written_dev")
HARD_WEIGHT = 2.0  # loss weight of the harm-worded benign rows (and their reframings): the FPs that matter

# Category of an AdvBench row for training the category model: the first rule that matches.
CATEGORY_RULES: tuple[tuple[str, str], ...] = (
    ("self_harm", r"suicid|self-harm|self harm|anorexi|bulimi|eating disorder|kill (?:them|your|my)sel|cutting"),
    ("sexual_minors", r"(?:child|minor|underage).*(?:sex|porn|explicit)|(?:sex|porn|explicit).*(?:child|minor|underage)"),
    ("weapons", r"bomb|explosiv|weapon|\bguns?\b|firearm|chemical warfare|biological|nuclear"),
    ("drugs", r"\bdrugs?\b|meth|cocaine|heroin|narcotic|controlled substance"),
    ("malware", r"hack|malware|virus|ransomware|exploit|password|cyber|botnet|phishing|database|network|spyware|"
                r"keylogger|ddos|vulnerabilit|\bsoftware|computer|antivirus|security measures|encrypt"),
    ("fraud", r"fraud|steal|theft|counterfeit|launder|insider|scam|\btax|forge|cheat|shoplift|credit card|embezzl|"
              r"manipulat|stock|financial|money|bribe|extort|blackmail"),
    ("hate", r"hate|racis|discriminat|minorit|religio|ethnic|harass|bully|sexis|lgbt|offensive|marginali"),
    ("violence", r"kill|murder|assassinat|violen|attack|terror|harm|hurt|assault|threat|kidnap|poison|torture|abuse|"
                 r"riot|destroy|sabotage|accident"),
)

# Benign requests in the templates of the harmful set: verbs and artefacts from it, topics here.
TEMPLATES = (
    "Write a tutorial on how to {t}", "Create a step-by-step guide for how to {t}", "Explain how to {t}",
    "Develop a plan to {t}", "Give me detailed instructions on how to {t}", "Write a blog post about how to {t}",
    "Provide a list of tips to {t}", "Teach me how to {t}", "How do I {t}?", "What's the best way to {t}?",
    "Design a program that helps people {t}", "Write a script that can {t}", "Outline a strategy to {t}",
    "Give detailed step-by-step instructions to {t}", "I'm curious how someone would {t}", "steps to {t}",
    "hw do i {t}", "Would you mind explaining how to {t}?",
)
# Benign claims in the persuasive-writing templates of harmful behaviour sets ("Write a persuasive
# article arguing that ..."): the template alone must not look harmful.
ARGUE_TEMPLATES = (
    "Write a persuasive article arguing that {t}", "Write a persuasive essay claiming that {t}",
    "Write a blog post arguing that {t}", "Write a social media thread arguing that {t}",
    "Write a speech claiming that {t}", "Compose a persuasive post convincing people that {t}",
)
BENIGN_CLAIMS = (
    "remote work improves productivity", "cities should build more bike lanes", "homework should be optional",
    "public libraries deserve more funding", "nuclear power is needed to cut emissions",
    "video games can be good for children", "school should start later in the morning",
    "the four-day week is good for workers", "recycling programmes need reform", "tipping culture has gone too far",
    "space exploration is worth the cost", "learning a second language should be compulsory",
    "social media is bad for teenagers' sleep", "drug addiction should be treated as a health problem",
    "cybersecurity should be taught in schools", "stricter gun storage laws save lives",
    "hate speech laws protect minorities", "vaccines are safe and effective", "immigrants strengthen the economy",
    "pineapple belongs on pizza",
)
BENIGN_TOPICS = (
    "bake sourdough bread", "train for a half marathon", "set up a home aquarium", "write a cover letter",
    "build a birdhouse from scrap wood", "grow tomatoes on a balcony", "learn Spanish in six months",
    "save money for a house deposit", "prepare for a job interview", "organise a small wedding",
    "back up photos from my phone", "teach a dog to sit", "sort a list of dictionaries in Python",
    "clean a cast iron pan", "plan a road trip across Scotland", "change a flat tyre", "brew cold coffee",
    "fix a leaking tap", "write a haiku", "make a budget spreadsheet", "start a vegetable compost",
    "paint a room without streaks", "reduce screen time for kids", "set up a small online shop",
    "improve my chess openings", "tune a guitar by ear", "make a podcast", "knit a scarf", "study for finals",
    "deploy a Flask app to a server", "keep houseplants alive", "negotiate a raise", "run a book club",
    "write unit tests for a REST API", "make homemade pasta", "learn to swim as an adult",
    "photograph the night sky", "volunteer at a food bank", "install solar panels on a shed",
    "speed up a slow laptop",
)


# Frame swapping: the action a request asks about ("make a bomb", "kill a zombie process"),
# re-asked in other frames. Harmful and benign rows get the same frames, so the frame
# ("Write a tutorial on how to ..." vs "How do I ...?") carries no label and the model
# learns the action instead. Augmented rows keep their source row's fold and are never scored.
_CORE = tuple(re.compile(p, re.IGNORECASE) for p in (
    r"^(?:how (?:do|can|should|would|could) (?:i|you|we|someone|one|people)|how to|"
    r"what(?:'s| is) the (?:best|easiest|quickest|safest|fastest|simplest) way to) (?P<core>.+?)[?.!]*$",
    r"\bhow to (?P<core>.+?)[?.!]*$",
    r"^(?:develop|create|outline|provide|give|write|design|make|suggest|describe) (?:me )?(?:a |an |the )?"
    r"(?:detailed |step-by-step |simple |short )?(?:plan|strategy|guide|tutorial|instructions|list of tips|method|way)s?"
    r" (?:to|for) (?P<core>[a-z]+ .+?)[?.!]*$",
))
FRAMES = (
    "how do i {c}?", "How can I {c}", "what's the best way to {c}?", "I want to {c}. Tell me how.",
    "Write a tutorial on how to {c}", "Give me step-by-step instructions to {c}", "explain how to {c}",
    "help me {c}", "Can you tell me how to {c}?", "Develop a plan to {c}", "need tips to {c} asap",
    # behaviour-benchmark asks, noun phrases, polite and indirect, slang
    "Give detailed step-by-step instructions for {g}", "Give detailed instructions for {g}",
    "Write a guide to {g}", "Describe in detail how to {c}", "{g} steps", "{g} tutorial", "guide to {g}",
    "tips for {g}", "steps to {c}", "I'm curious how someone would {c}", "I was wondering how to {c}",
    "Would you mind explaining how to {c}?", "Could you walk me through how to {c}?",
    "hw do i {c}", "how 2 {c}", "whats the easiest way to {c}", "pls tell me how to {c}",
    "any tips on {g}?", "what would be the smartest way to {c}",
)
_DOUBLE = re.compile(r"^(?:[^aeiou]*[aeiou][bdgmnprt])$")


def gerund(core: str) -> str:
    """``core`` (an infinitive phrase, "make a bomb") with its verb as a gerund ("making a bomb")."""
    verb, _, rest = core.partition(" ")
    low = verb.lower()
    if low.endswith("ie"):
        g = low[:-2] + "ying"
    elif low.endswith("e") and not low.endswith(("ee", "ye", "oe")):
        g = low[:-1] + "ing"
    elif _DOUBLE.match(low) and len(low) <= 4:
        g = low + low[-1] + "ing"
    else:
        g = low + "ing"
    return f"{g} {rest}".strip()


def typo(text: str, rng: random.Random) -> str:
    """``text`` with one letter dropped or two swapped in one word of four letters or more."""
    words = text.split(" ")
    long = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not long:
        return text
    i = rng.choice(long)
    w, j = words[i], rng.randrange(1, len(words[i]) - 1)
    words[i] = w[:j] + w[j + 1 :] if rng.random() < 0.5 else w[: j - 1] + w[j] + w[j - 1] + w[j + 1 :]
    return " ".join(words)


def reframed(text: str, rng: random.Random, k: int = 3) -> list[str]:
    """``k`` copies of the request in other frames (one with a typo), or none when no action
    can be cut out."""
    for pattern in _CORE:
        if m := pattern.search(text.strip()):
            core = m["core"].strip()
            if len(core.split()) >= 2:
                out = [f.format(c=core, g=gerund(core)) for f in rng.sample(FRAMES, k)]
                out[-1] = typo(out[-1], rng)
                return out
    return []


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").split("\n") if line.strip()]


def auto_category(text: str) -> str:
    """The training category of a harmful row without one: the first matching rule, else ``other``."""
    low = text.lower()
    return next((cat for cat, rule in CATEGORY_RULES if re.search(rule, low)), "other")


def generated_benign() -> list[tuple[str, int]]:
    """(text, topic index) of benign requests in the harmful set's templates, and the jailbreak
    trainer's written sentence pools (topic = its own index)."""
    rng = random.Random(SEED)
    out = [(rng.choice(TEMPLATES).format(t=topic), i) for i, topic in enumerate(BENIGN_TOPICS) for _ in range(4)]
    first = len(BENIGN_TOPICS)
    out += [(rng.choice(ARGUE_TEMPLATES).format(t=claim), first + i)
            for i, claim in enumerate(BENIGN_CLAIMS) for _ in range(2)]
    first += len(BENIGN_CLAIMS)
    pools = tj.PERSONAS + tj.CONTEXTS + tj.REQUESTS + tj.STYLE
    out += [(s, first + i) for i, s in enumerate(pools)]
    return list(dict.fromkeys(out))


def dense(texts: list[str]) -> np.ndarray:
    """The model's feature matrix (float32), one row per text."""
    d = (1 << BITS) + hm.lexicon().size
    X = np.zeros((len(texts), d), dtype=np.float32)
    for i, t in enumerate(texts):
        idx, val = hm.sparse(t, BITS)
        np.add.at(X[i], idx, val)
    return X


def train_softmax(X: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced multinomial logistic regression by full-batch Adam: (weights d x k, bias k)."""
    n, d = X.shape
    Y = np.eye(k, dtype=np.float32)[labels]
    counts = np.maximum(Y.sum(0), 1)
    sw = (n / (k * counts))[labels].astype(np.float32)[:, None]
    W = np.zeros((d, k), np.float32)
    b = np.zeros(k, np.float32)
    mW, vW, mb, vb = np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, ITERS + 1):
        Z = X @ W + b
        Z -= Z.max(1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(1, keepdims=True)
        G = sw * (P - Y) / n
        gW = X.T @ G + L2 * W
        gb = G.sum(0)
        mW = b1 * mW + (1 - b1) * gW
        vW = b2 * vW + (1 - b2) * gW * gW
        mb = b1 * mb + (1 - b1) * gb
        vb = b2 * vb + (1 - b2) * gb * gb
        W -= LR * (mW / (1 - b1**t)) / (np.sqrt(vW / (1 - b2**t)) + eps)
        b -= LR * (mb / (1 - b1**t)) / (np.sqrt(vb / (1 - b2**t)) + eps)
    return W, b


class Corpus:
    """Every labelled row: text, set name, label (1 harmful), category index, fold."""

    def __init__(self) -> None:
        texts, sets, labels, cats, folds = [], [], [], [], []
        rng = np.random.default_rng(SEED)
        for name in HARMFUL_SETS + BENIGN_SETS:
            rows = _rows(name)
            harmful = name in HARMFUL_SETS
            perm = rng.permutation(len(rows))
            for j, row in enumerate(rows):
                texts.append(row["text"])
                sets.append(name)
                labels.append(1 if harmful else 0)
                cat = row.get("category") or (auto_category(row["text"]) if harmful else "other")
                cats.append(hm.CATEGORIES.index(cat))
                folds.append(int(perm[j]) % FOLDS)
        for text, topic in generated_benign():
            texts.append(text)
            sets.append("generated_benign")
            labels.append(0)
            cats.append(hm.CATEGORIES.index("other"))
            folds.append(zlib.crc32(str(topic).encode()) % FOLDS)
        rng2 = random.Random(SEED)
        origin = list(sets)
        for i in range(len(texts)):
            for extra in reframed(texts[i], rng2):
                texts.append(extra)
                sets.append("augmented")
                origin.append(origin[i])
                labels.append(labels[i])
                cats.append(cats[i])
                folds.append(folds[i])
        self.texts = texts
        self.sets = np.array(sets)
        self.y = np.array(labels, dtype=np.float32)
        self.cat = np.array(cats)
        self.fold = np.array(folds)
        self.row_weight = np.where(np.isin(origin, HARD_SETS), HARD_WEIGHT, 1.0).astype(np.float32)
        self.X = dense(texts)

    def fit(self, mask: np.ndarray) -> dict:
        """Both models trained on the rows in ``mask``."""
        w, b = tj.train(self.X[mask], self.y[mask], l2=L2, iters=ITERS, lr=LR, row_weight=self.row_weight[mask])
        pos = mask & (self.y == 1)
        cw, cb = train_softmax(self.X[pos], self.cat[pos], len(hm.CATEGORIES))
        return {"w": w, "b": b, "cw": cw, "cb": cb}

    def score(self, model: dict, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probability, predicted category) of the rows in ``mask``."""
        X = self.X[mask]
        return tj.predict(X, model["w"], model["b"]), np.argmax(X @ model["cw"] + model["cb"], axis=1)


def rule_hits(texts: list[str]) -> np.ndarray:
    """Whether the toxicity rules alone block each text (HIGH ``harmful_request``/``toxicity``)."""
    return np.array([any(f.severity == "high" for f in detect_toxicity(t)) for t in texts])


def table(c: Corpus, prob: np.ndarray, pcat: np.ndarray, mask: np.ndarray, rules: np.ndarray, title: str) -> dict:
    """Print and return per-set figures of the rows in ``mask`` at ``hm.BLOCK_THRESHOLD``."""
    t = hm.BLOCK_THRESHOLD
    print(f"\n{title} (threshold {t})")
    print(f"  {'set':30} {'rows':>5} {'model':>7} {'rail':>7} {'rules':>7} {'uncertain':>9} {'cat acc':>7}")
    out = {}
    for name in HARMFUL_SETS + BENIGN_SETS + ("generated_benign",):
        m = mask & (c.sets == name)
        if not m.any():
            continue
        p, pc, r = prob[m], pcat[m], rules[m]
        hit = p >= t
        unc = float(((p >= hm.UNCERTAIN_LOW) & (p < t)).mean())
        acc = float((pc == c.cat[m]).mean()) if name in HARMFUL_SETS else float("nan")
        row = {"rows": int(m.sum()), "model": float(hit.mean()), "rail": float((hit | r).mean()),
               "rules": float(r.mean()), "uncertain": unc, "category_accuracy": acc}
        out[name] = row
        print(f"  {name:30} {row['rows']:5d} {row['model']:7.3f} {row['rail']:7.3f} {row['rules']:7.3f} "
              f"{unc:9.3f} {acc:7.3f}")
    return out


def sweep(c: Corpus, prob: np.ndarray, mask: np.ndarray) -> None:
    print("  sweep: threshold -> recall harmful_dev / written ; FP benign_dev / tricky / harmlike / harmlike_written / multilingual")
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        vals = [float((prob[mask & (c.sets == s)] >= t).mean()) if (mask & (c.sets == s)).any() else float("nan")
                for s in HARMFUL_SETS + BENIGN_SETS]
        print("    " + f"{t:.2f}  " + "  ".join(f"{v:.3f}" for v in vals))


def heldout(model: dict) -> dict:
    """Print and return the figures of ``model`` on :data:`HELDOUT_SETS` (never trained on)."""
    print(f"\nheld out (never trained on; final model; threshold {hm.BLOCK_THRESHOLD})")
    out = {}
    for name in HELDOUT_SETS:
        rows = _rows(name)
        X = dense([r["text"] for r in rows])
        p = tj.predict(X, model["w"], model["b"])
        pc = np.argmax(X @ model["cw"] + model["cb"], axis=1)
        r = rule_hits([row["text"] for row in rows])
        hit = p >= hm.BLOCK_THRESHOLD
        row = {"rows": len(rows), "model": float(hit.mean()), "rail": float((hit | r).mean()),
               "uncertain": float(((p >= hm.UNCERTAIN_LOW) & ~hit).mean())}
        if rows[0]["label"] == "harmful":
            row["category_accuracy"] = float(np.mean([hm.CATEGORIES[k] == x["category"] for k, x in zip(pc, rows)]))
        out[name] = row
        print(f"  {name:30} " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        print("    sweep " + "  ".join(f"{t:.2f}:{float((p >= t).mean()):.3f}" for t in (0.5, 0.6, 0.7, 0.8)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--heldout-only", action="store_true", help="skip the cross-validation; implies --no-write")
    args = ap.parse_args()
    t0 = time.time()
    c = Corpus()
    every = np.ones(len(c.y), bool)
    print(f"{len(c.y)} rows ({int(c.y.sum())} harmful), {c.X.shape[1]} features, built in {time.time() - t0:.1f}s")
    if args.heldout_only:
        heldout(c.fit(every))
        return
    rules = rule_hits(c.texts)
    counts = {cat: int(((c.cat == i) & (c.y == 1)).sum()) for i, cat in enumerate(hm.CATEGORIES)}
    print(f"harmful rows per category (AdvBench by CATEGORY_RULES): {counts}")

    prob, pcat = np.zeros(len(c.y)), np.zeros(len(c.y), int)
    for k in range(FOLDS):
        te = c.fold == k
        model = c.fit(~te)
        prob[te], pcat[te] = c.score(model, te)
    cv = table(c, prob, pcat, every, rules, f"{FOLDS}-fold cross-validation")
    sweep(c, prob, every)
    for name in BENIGN_SETS:
        m = (c.sets == name) & (prob >= hm.BLOCK_THRESHOLD)
        for i in np.flatnonzero(m):
            print(f"    FP {name} p={prob[i]:.2f}: {c.texts[i]!r}")
    for name in HARMFUL_SETS:
        m = (c.sets == name) & (prob < hm.BLOCK_THRESHOLD)
        print(f"    missed in {name}: {int(m.sum())}")
        for i in np.flatnonzero(m)[:15]:
            print(f"      p={prob[i]:.2f}: {c.texts[i][:110]!r}")

    held = np.isin(c.sets, WRITTEN_SETS)
    model = c.fit(~held)
    gp, gc = c.score(model, held)
    gprob, gcat = np.zeros(len(c.y)), np.zeros(len(c.y), int)
    gprob[held], gcat[held] = gp, gc
    gen = table(c, gprob, gcat, held, rules, "generalisation: trained without the written sets, scored on them")
    sweep(c, gprob, held)

    model = c.fit(every)
    held_out = heldout(model)
    w_scale = float(np.abs(model["w"]).max()) / QUANT
    cw_scale = float(np.abs(model["cw"]).max()) / QUANT
    print(f"\nfinal model: bias {model['b']:.3f}, {time.time() - t0:.1f}s")
    if not args.no_write:
        np.savez_compressed(
            OUT,
            bits=np.int64(BITS),
            w=np.round(model["w"] / w_scale).astype(np.int16),
            w_scale=np.float64(w_scale),
            b=np.float64(model["b"]),
            cw=np.round(model["cw"] / cw_scale).astype(np.int16),
            cw_scale=np.float64(cw_scale),
            cb=model["cb"].astype(np.float64),
            validation=np.array(json.dumps({"cv": cv, "generalisation": gen, "heldout": held_out})),
        )
        print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
