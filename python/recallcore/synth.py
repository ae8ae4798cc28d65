"""Conversations for demos and benchmarks: the bundled demo, and synthetic ones with planted facts.

* :func:`load_demo_conversation` returns the scripted multi-session conversation shipped with the
  package (``recallcore/data/demo_conversation.json``, LoCoMo layout): a user and an assistant over
  six sessions, with preferences, facts that change (a move, a new job) and a project with tasks.
* :func:`planted_conversations` generates user/assistant conversations of small talk in which facts
  ("My sister's name is Ingrid", "I parked on level 3, spot B12") are planted at known turns, some
  later updated ("We changed the guest wifi password to ..."), plus near-miss distractor turns that
  share the question's words but not its answer. Each fact gets one question whose evidence is the
  turn holding the current value; about half the questions are paraphrased so that word overlap
  alone does not find the answer. Everything is deterministic in ``seed``.

Both return :class:`recallcore.eval.Conversation` objects, so :func:`recallcore.eval.run_eval` takes
them directly; :func:`to_locomo` writes them in the LoCoMo layout (``load_locomo`` reads them back).

Question categories of the synthetic set: 1 = the question shares words with the fact, 2 = the
question is a paraphrase, 3 = the fact was updated later (evidence: the update).

>>> convs = planted_conversations(2, n_turns=40, seed=1)
>>> len(convs[0].turns)
40
>>> q = convs[0].questions[0]
>>> q.answer in convs[0].turn(q.evidence[0]).text
True
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .eval import Conversation, Question, Session, Turn, _parse_conversation, parse_date_time

__all__ = ["FACT_KINDS", "load_demo_conversation", "planted_conversations", "to_locomo"]

# ------------------------------------------------------------------------------ value generators

_PEOPLE = ["Priya", "Tomasz", "Ingrid", "Kwame", "Yuki", "Mateo", "Anouk", "Dmitri", "Soraya", "Lorcan",
           "Esperanza", "Haruto", "Zainab", "Bjorn", "Ottilie", "Ravi", "Marisol", "Teodor", "Folake",
           "Siobhan"]
_PETS = ["Biscuit", "Pepper", "Noodle", "Mochi", "Juniper", "Waffles", "Pickles", "Ziggy", "Clementine",
         "Bramble", "Tofu", "Marzipan"]
_ANIMALS = ["kitten", "puppy", "rabbit", "parrot", "tortoise"]
_ALLERGENS = ["shellfish", "peanuts", "sesame", "kiwi", "mustard", "buckwheat", "celery"]
_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_CITIES = ["Lisbon", "Osaka", "Montreal", "Nairobi", "Reykjavik", "Valparaiso", "Tbilisi", "Hobart"]
_KEY_SPOTS = ["under the blue flowerpot", "inside the porch lantern", "taped behind the mailbox",
              "in the fake rock by the steps", "on the ledge above the shed door"]
_TEAS = ["oolong", "genmaicha", "rooibos", "lapsang souchong", "sencha", "hibiscus"]
_BOOKS = ["The Glass Orchard", "Salt and Lanterns", "A Map of Quiet Rivers", "The Cartographer's Daughter",
          "Nine Winters North", "The Paper Harbor"]
_WIFI_WORDS = ["maple", "harbor", "comet", "fennel", "quartz"]
_BIKE_SPOTS = ["the rack outside the library", "the railing by the bakery on Elm Street",
               "the station's covered bike shelter", "the post next to the pharmacy"]


def _time(rng: random.Random) -> str:
    return f"{rng.choice([8, 9, 10, 11, 14, 15, 16])}:{rng.choice(['00', '15', '30', '45'])}"


@dataclass(frozen=True)
class FactKind:
    """A kind of fact: how it is stated, asked (literally and paraphrased) and updated."""

    name: str
    value: Callable[[random.Random], str]
    statements: tuple[str, ...]  # "{v}" is the value; "{x}" an extra slot filled per fact
    question: str
    paraphrase: str
    distractors: tuple[str, ...]
    update: Optional[str] = None
    extra: Optional[Callable[[random.Random], str]] = None


FACT_KINDS: tuple[FactKind, ...] = (
    FactKind("sister", lambda r: r.choice(_PEOPLE),
             ("By the way, my sister's name is {v}.", "My sister {v} is coming to stay with us next month."),
             "What is my sister's name?", "What is my female sibling called?",
             ("My neighbour's sister just started university.", "My sister keeps sending me memes at 2 am.")),
    FactKind("parking", lambda r: f"level {r.randint(1, 6)}, spot {r.choice('ABCDE')}{r.randint(2, 48)}",
             ("I parked on {v} today.", "Note for later: I parked on {v}."),
             "Where did I park?", "Where in the garage did I leave the car?",
             ("Parking downtown is getting more expensive every year.",),
             update="Quick update: I had to move the car, I parked on {v} now."),
    FactKind("allergy", lambda r: r.choice(_ALLERGENS),
             ("I'm allergic to {v}, so please keep that in mind for recipes.",
              "Just so you know, I have an allergy to {v}."),
             "What am I allergic to?", "Which ingredient should you never put in a dish you suggest for me?",
             ("My friend's allergies are terrible every spring.",)),
    FactKind("dentist", lambda r: f"{r.choice(_WEEKDAYS)} at {_time(r)}",
             ("My dentist appointment is on {v}.", "I booked the dentist for {v}."),
             "When is my dentist appointment?", "When do I have to get my teeth checked?",
             ("I really should floss more often.",),
             update="The dentist's office called and moved my appointment to {v}."),
    FactKind("wifi", lambda r: f"{r.choice(_WIFI_WORDS)}-{r.randint(1000, 9999)}",
             ("The guest wifi password is {v}.", "If anyone asks, the wifi password for guests is {v}."),
             "What is the guest wifi password?", "What code do visitors need to get online at my place?",
             ("The internet was painfully slow last night.",),
             update="We changed the guest wifi password, it's {v} now."),
    FactKind("pet", lambda r: r.choice(_PETS),
             ("We adopted a {x} and named it {v}.", "Our new {x} is called {v}, she's adorable."),
             "What is the name of the {x} we adopted?", "What did we call our newest family member with fur?",
             ("The dog next door barks all morning.",), extra=lambda r: r.choice(_ANIMALS)),
    FactKind("gate", lambda r: f"gate {r.choice('ABCDF')}{r.randint(3, 39)}",
             ("My flight to {x} leaves from {v}.", "Checked in online: the plane to {x} boards at {v}."),
             "Which gate does my flight to {x} leave from?",
             "Where in the airport do I board for my {x} trip?",
             ("Airports always make me a bit nervous.",), extra=lambda r: r.choice(_CITIES)),
    FactKind("manager", lambda r: r.choice(_PEOPLE),
             ("My new manager is called {v}.", "I finally met my new manager, {v}."),
             "What is my new manager called?", "Who is my boss at work now?",
             ("Meetings with management ran long again today.",),
             update="Reorg news: {v} is my manager now."),
    FactKind("locker", lambda r: f"{r.randint(0, 9)}-{r.randint(10, 39)}-{r.randint(10, 39)}",
             ("My gym locker combination is {v}.",
              "Remind me later: the lock on my gym locker opens with {v}."),
             "What is my gym locker combination?", "Which numbers open my lock at the fitness center?",
             ("The gym was packed this evening.",)),
    FactKind("birthday", lambda r: f"{r.choice(_MONTHS)} {r.randint(2, 28)}",
             ("My mom's birthday is on {v}.", "Don't let me forget: Mom's birthday is {v}."),
             "When is my mom's birthday?", "On what date should I call my mother to celebrate?",
             ("I should call my parents more often.",)),
    FactKind("spare_key", lambda r: r.choice(_KEY_SPOTS),
             ("The spare key is {v}.", "We keep the spare key {v}."),
             "Where is the spare key?", "Where do we hide the extra way into the house?",
             ("I lost my keys twice last week.",)),
    FactKind("tea", lambda r: r.choice(_TEAS),
             ("My favourite tea is {v}.", "Nothing beats a cup of {v}, it's my favourite tea."),
             "What is my favourite tea?", "Which hot drink do I like best?",
             ("My coworker drinks six cups of coffee a day.",)),
    FactKind("book", lambda r: r.choice(_BOOKS),
             ("I'm currently reading {v}.", "I just started reading {v} and can't put it down."),
             "What book am I currently reading?", "Which novel am I in the middle of?",
             ("My book club picked something really long this time.",)),
    FactKind("plumber", lambda r: r.choice(_WEEKDAYS),
             ("The plumber is coming on {v} to fix the leak.",),
             "When is the plumber coming?", "On which day will someone repair the dripping pipe?",
             ("The kitchen tap makes a weird noise sometimes.",),
             update="The plumber rescheduled to {v}."),
    FactKind("bike", lambda r: r.choice(_BIKE_SPOTS),
             ("I locked my bike at {v}.",),
             "Where did I lock my bike?", "Where is my bicycle right now?",
             ("Cycling in the rain is miserable.",)),
    FactKind("anniversary", lambda r: f"{r.choice(_MONTHS)} {r.randint(2, 28)}",
             ("Our wedding anniversary is on {v}.",),
             "When is our wedding anniversary?", "On what date did my partner and I get married?",
             ("My cousin's wedding was beautiful.",)),
)

# ------------------------------------------------------------------------------------ small talk

_OPENERS = ["", "", "Honestly, ", "So, ", "Anyway, ", "Random thought: ", "Okay, ", "Ha, ", "Well, ",
            "You know what, ", "Funny thing, ", "Also, "]

_TOPICS: dict[str, list[str]] = {
    "weather": ["it's been raining nonstop all week", "the sun finally came out this afternoon",
                "there was a thunderstorm that woke me up", "it's so windy that my umbrella broke",
                "the fog this morning was unreal", "it's freezing and I can't find my gloves"],
    "cooking": ["I tried making risotto and it turned into glue", "I baked sourdough for the first time",
                "I'm trying to eat more vegetables this month", "the curry I made was way too spicy",
                "I finally learned to make a proper omelette", "I burned the pancakes again"],
    "running": ["I ran five kilometres without stopping", "my knees hurt after the long run",
                "I signed up for a charity fun run", "I keep skipping my morning jog",
                "I bought new running shoes", "the park loop felt easy today"],
    "movies": ["I watched an old black and white film last night", "the new sci-fi movie was a letdown",
               "I fell asleep halfway through the documentary", "we rewatched a comedy from the nineties",
               "the cinema was almost empty", "I can't decide what series to start next"],
    "work": ["the quarterly report is eating my whole week", "my laptop crashed during a presentation",
             "we had a surprisingly fun team lunch", "I have too many emails to answer",
             "the project deadline moved up again", "I'm working from home for a few days"],
    "garden": ["the tomatoes are finally turning red", "snails ate half of my lettuce",
               "I repotted all the houseplants", "the basil on the balcony is thriving",
               "I planted some sunflower seeds", "the lawn desperately needs mowing"],
    "music": ["I've had the same song stuck in my head all day", "I went to a tiny jazz concert",
              "I'm trying to learn a few chords on the guitar", "I made a new playlist for cleaning",
              "my headphones broke on the train", "I rediscovered an album from high school"],
    "commute": ["the train was forty minutes late", "traffic on the bridge was terrible",
                "I biked to work and arrived soaked", "the bus driver sang the whole way",
                "I missed my stop because I was reading", "the roadworks outside the station never end"],
    "weekend": ["I'm thinking about a day trip to the coast", "I mostly want to sleep in this weekend",
                "we might go to the flea market", "friends invited us for a barbecue",
                "I plan to finally clean the garage", "I want to try the new ramen place"],
    "chores": ["the washing machine is making a strange sound", "I spent the evening folding laundry",
               "I reorganised the kitchen cupboards", "the fridge needs a serious clean-out",
               "I finally fixed the squeaky door", "the recycling piles up so fast"],
    "games": ["we played a board game until midnight", "I'm stuck on a puzzle level",
              "I lost at chess three times in a row", "I started a thousand piece jigsaw",
              "my nephew beat me at cards", "the crossword today was brutal"],
}

_FOLLOW_UPS = ["", "", "", " Any tips?", " What do you think?", " Is that normal?", " Ugh.",
               " Not bad, right?", " I'm kind of proud of it.", " Long day."]

_REPLIES = [
    "That sounds {good}! How did it go after that?",
    "Oh no, that sounds {bad}. Do you want some ideas for next time?",
    "Ha, I can picture that. {ask}",
    "Nice, thanks for sharing. {ask}",
    "That does sound {bad}. A small change might help, like setting a reminder.",
    "I hear you. {ask}",
    "Sounds like quite a day. {ask}",
    "Good to know! Little wins like that add up.",
    "That's {bad}. I'd take it one step at a time.",
    "Makes sense. Would a short checklist help?",
]
_GOOD = ["fun", "lovely", "great", "relaxing", "exciting", "nice"]
_BAD = ["frustrating", "exhausting", "annoying", "stressful", "tiring", "rough"]
_ASKS = ["Are you planning to do it again?", "What would you change?", "How are you feeling about it now?",
         "Was anyone else with you?", "Did it turn out better than expected?", "What's next on your list?"]
_ACKS = ["Got it, I'll keep that in mind.", "Noted!", "Thanks, I'll remember that.", "Okay, saved that.",
         "Understood, good to know.", "All right, I've made a note of it."]


def _small_talk(rng: random.Random) -> str:
    topic = rng.choice(list(_TOPICS))
    body = rng.choice(_TOPICS[topic])
    opener = rng.choice(_OPENERS)
    text = body[0].upper() + body[1:] if not opener else opener + body
    return text + "." + rng.choice(_FOLLOW_UPS)


def _reply(rng: random.Random) -> str:
    return rng.choice(_REPLIES).format(good=rng.choice(_GOOD), bad=rng.choice(_BAD), ask=rng.choice(_ASKS))


# ------------------------------------------------------------------------------------- generator


def planted_conversations(
    n_conversations: int = 100,
    n_turns: int = 50,
    seed: int = 0,
    *,
    n_facts: Optional[int] = None,
    update_rate: float = 0.3,
    distractor_rate: float = 0.7,
    turns_per_session: int = 16,
) -> list[Conversation]:
    """Synthetic user/assistant conversations with facts planted at known turns.

    ``n_facts`` defaults to ``max(1, n_turns // 12)`` (at most one per fact kind, 16). Facts are
    stated by the user in the first 70% of the conversation; with probability ``update_rate`` an
    updatable fact is restated later with a new value (the question's evidence is then the update).
    Each question's ``meta`` holds ``kind``, ``fact_turn``, ``asked_after`` (a dia_id after the
    evidence: when a benchmark may ask it) and ``paraphrase``.

    >>> a = planted_conversations(3, n_turns=30, seed=7)
    >>> b = planted_conversations(3, n_turns=30, seed=7)
    >>> [t.text for t in a[2].turns] == [t.text for t in b[2].turns]
    True
    """
    if n_conversations < 0:
        raise ValueError(f"n_conversations must be >= 0, got {n_conversations}")
    if n_turns < 4:
        raise ValueError(f"n_turns must be >= 4, got {n_turns}")
    if turns_per_session < 2:
        raise ValueError(f"turns_per_session must be >= 2, got {turns_per_session}")
    facts = max(1, n_turns // 12) if n_facts is None else n_facts
    max_facts = min(len(FACT_KINDS), len(range(0, int(n_turns * 0.7), 2)))
    if not 1 <= facts <= max_facts:
        raise ValueError(f"n_facts must be in [1, {max_facts}] for {n_turns} turns, got {facts}")
    return [_one_conversation(random.Random(seed * 1_000_003 + i), f"synth-{seed}-{i}", n_turns, facts,
                              update_rate, distractor_rate, turns_per_session)
            for i in range(n_conversations)]


def _one_conversation(rng: random.Random, conv_id: str, n_turns: int, n_facts: int, update_rate: float,
                      distractor_rate: float, turns_per_session: int) -> Conversation:
    user_slots = list(range(0, n_turns, 2))  # user speaks at even positions, the assistant replies
    early = [i for i in user_slots if i < int(n_turns * 0.7)]
    kinds = rng.sample(FACT_KINDS, n_facts)
    fact_pos = sorted(rng.sample(early, n_facts))
    texts: dict[int, str] = {}
    plans = []
    used_values: set[str] = set()
    for kind, pos in zip(kinds, fact_pos):
        extra = kind.extra(rng) if kind.extra else ""
        value = _fresh(rng, kind, used_values)
        texts[pos] = rng.choice(kind.statements).format(v=value, x=extra)
        plans.append({"kind": kind, "pos": pos, "value": value, "extra": extra, "evidence": pos})
    free = [i for i in user_slots if i not in texts]
    for plan in plans:
        kind = plan["kind"]
        later = [i for i in free if i > plan["pos"]]
        if kind.update and later and rng.random() < update_rate:
            pos = rng.choice(later)
            new_value = _fresh(rng, kind, used_values)
            texts[pos] = kind.update.format(v=new_value, x=plan["extra"])
            free.remove(pos)
            plan.update(value=new_value, evidence=pos, updated_from=plan["value"])
    for plan in plans:
        if free and rng.random() < distractor_rate:
            pos = rng.choice(free)
            texts[pos] = rng.choice(plan["kind"].distractors)
            free.remove(pos)
    fact_turns = {p["pos"] for p in plans} | {p["evidence"] for p in plans}

    start = datetime(2024, 3, 1, tzinfo=timezone.utc) + timedelta(days=rng.randint(0, 300))
    sessions: list[Session] = []
    day = start
    for s_index in range((n_turns + turns_per_session - 1) // turns_per_session):
        day = day + timedelta(days=rng.randint(1, 4) if s_index else 0)
        moment = day.replace(hour=rng.randint(8, 21), minute=rng.randint(0, 59), second=0)
        date_time = moment.strftime("%Y-%m-%d %H:%M:%S")
        sessions.append(Session(s_index + 1, date_time, parse_date_time(date_time)))
    dia: dict[int, str] = {}
    for i in range(n_turns):
        session = sessions[i // turns_per_session]
        if i % 2 == 0:
            text = texts.get(i) or _small_talk(rng)
            speaker = "user"
        else:
            text = rng.choice(_ACKS) if (i - 1) in fact_turns else _reply(rng)
            speaker = "assistant"
        dia[i] = f"D{session.number}:{len(session.turns) + 1}"
        session.turns.append(Turn(speaker, dia[i], text, session.number, session.ts, None, i))

    questions = []
    for q_index, plan in enumerate(sorted(plans, key=lambda p: p["evidence"])):
        kind = plan["kind"]
        paraphrase = rng.random() < 0.5
        text = (kind.paraphrase if paraphrase else kind.question).format(x=plan["extra"])
        category = 3 if "updated_from" in plan else (2 if paraphrase else 1)
        asked = rng.randint(min(plan["evidence"] + 1, n_turns - 1), n_turns - 1)
        meta = {"kind": kind.name, "fact_turn": dia[plan["pos"]], "asked_after": dia[asked],
                "paraphrase": paraphrase}
        if "updated_from" in plan:
            meta["updated_from"] = plan["updated_from"]
        evidence = (dia[plan["evidence"]],)
        questions.append(Question(text, plan["value"], evidence, category, q_index, evidence, (), meta))
    return Conversation(conv_id, sessions, questions, ("user", "assistant"))


def _fresh(rng: random.Random, kind: FactKind, used: set[str]) -> str:
    """A value not used before in this conversation, so every answer names exactly one turn."""
    for _ in range(100):
        v = kind.value(rng)
        if v not in used and not any(v in u or u in v for u in used):
            used.add(v)
            return v
    raise RuntimeError(f"could not draw a fresh value for {kind.name}")


# ----------------------------------------------------------------------------------- LoCoMo + demo


def to_locomo(conversations: list[Conversation]) -> list[dict[str, Any]]:
    """The conversations as LoCoMo-layout samples (``json.dump`` them; ``load_locomo`` reads them)."""
    out = []
    for c in conversations:
        conv: dict[str, Any] = {}
        if len(c.speakers) >= 2:
            conv["speaker_a"], conv["speaker_b"] = c.speakers[0], c.speakers[1]
        for s in c.sessions:
            if s.date_time is not None:
                conv[f"session_{s.number}_date_time"] = s.date_time
            conv[f"session_{s.number}"] = [
                {"speaker": t.speaker, "dia_id": t.dia_id, "text": t.text,
                 **({"blip_caption": t.blip_caption} if t.blip_caption else {})}
                for t in s.turns
            ]
        qa = [{"question": q.question, "answer": q.answer, "evidence": list(q.raw_evidence or q.evidence),
               "category": q.category, **q.meta} for q in c.questions]
        out.append({"sample_id": c.id, "conversation": conv, "qa": qa})
    return out


def load_demo_conversation() -> Conversation:
    """The scripted demo conversation shipped with the package.

    >>> conv = load_demo_conversation()
    >>> conv.id, len(conv.sessions) >= 4, all(q.usable for q in conv.questions)
    ('demo', True, True)
    """
    text = resources.files("recallcore").joinpath("data/demo_conversation.json").read_text(encoding="utf-8")
    return _parse_conversation(json.loads(text), 0)


def save_locomo(conversations: list[Conversation], path: Union[str, Path]) -> None:
    """Write :func:`to_locomo` output as JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_locomo(conversations), f, ensure_ascii=False, indent=1)
