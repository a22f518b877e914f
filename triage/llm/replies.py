"""How the local engine writes a reply: from the closest remembered reply, filled from the ticket, grounded in
the public articles it cites. Plain data only; the pipeline picks the memory and the passages.

A reply is one coherent answer, written to the customer in their language when the team has replies in it:
a greeting, the body of a remembered reply (a reference reply shipped for the taxonomy, or one an agent
sent to a ticket like this one), and a sign-off. With no remembered reply for the intent it falls back to
the best public passage, quoted as a short run of its own sentences, never fragments of several articles.
A slot it cannot fill from the ticket is left as a blank `[[order number]]` that the agent must fill.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from triage.blanks import blank, blanks

# --- Slots and blanks ---------------------------------------------------------------------------

# A slot in a remembered reply or a macro: `{{first_name}}`. What an unfilled one becomes is a blank
# (triage/blanks.py): visible, highlighted on the ticket page, and refused on sending.
SLOT_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
SLOTS = ("first_name", "last_name", "email", "order_number", "amount")

# An order reference as customers write it: "order 48213", "pedido nº 48213", "Bestellnummer: 48213",
# "#NW-20931". A bare number is not taken: it may be a postcode, a phone number or a date.
_ORDER_RE = re.compile(
    r"(?:\b(?:order|purchase|pedido|compra|commande|bestellung|bestellnummer|encomenda|ordine|bestelling)"
    r"(?:\s+(?:no\.?|nr\.?|num(?:ber)?\.?|número|numero|n[º°o]\.?|numéro|nummer|id))?"
    r"(?:\s+(?:is|was|es|est|ist|é|è))?\s*[:#]?\s*"
    r"|#\s?)"
    r"(?P<ref>(?!TD-)(?:[A-Z]{1,4}-)?\d{4,}(?:-\d+)?)(?![\w-])",
    re.IGNORECASE,
)
# A reference with a shop's prefix, unlabelled: "NW-20931". Our own ticket token (TD-...) is not one.
_BARE_REF_RE = re.compile(r"(?<![\w-])(?P<ref>(?!TD-)[A-Z]{2,4}-\d{4,})(?![\w-])")
_AMOUNT_RE = re.compile(
    r"(?:[€$£]\s?\d{1,6}(?:[.,]\d{2})?|\b\d{1,6}(?:[.,]\d{2})?\s?(?:€|EUR|USD|GBP|euros?|dollars?|pounds?)\b)",
    re.IGNORECASE,
)


def order_number(text: str) -> str | None:
    """The first order reference in the text, labelled ("order 48213", "pedido nº 48213", "#4821") or with
    a shop's prefix ("NW-20931"); a bare number is not one (a postcode, a phone number, a date)."""
    found = _ORDER_RE.search(text or "") or _BARE_REF_RE.search(text or "")
    return found.group("ref") if found else None


def ticket_values(*, subject: str, body: str, from_name: str, from_email: str = "") -> dict[str, str]:
    """The customer's own values a reply may name, as found in the ticket; a value it lacks is absent."""
    text = f"{subject}\n{body}"
    values: dict[str, str] = {}
    names = from_name.replace('"', "").split()
    # "Lopez, Maria" as some mail clients write it.
    if len(names) >= 2 and names[0].endswith(","):
        names = [*names[1:], names[0].rstrip(",")]
    if names and re.fullmatch(r"[^\W\d_][\w'.-]*", names[0]):
        values["first_name"] = names[0][:1].upper() + names[0][1:]
        if len(names) > 1:
            values["last_name"] = names[-1]
    if from_email:
        values["email"] = from_email
    order = order_number(text)
    if order:
        values["order_number"] = order
    amount = _AMOUNT_RE.search(text)
    if amount:
        values["amount"] = " ".join(amount.group().split())
    return values


# A remembered reply names the order it answered ("order {{order_number}}", "el pedido {{order_number}}"). When
# this ticket gives no order number, the reply speaks of "your order" instead of leaving a blank: the sentence
# reads the same, and the agent has one thing less to fill.
_ORDER_SLOT_EN = re.compile(r"\b(?:(the|your|this)\s+)?(O|o)rder\s+\{\{\s*order_number\s*\}\}")
_ORDER_SLOT_NOUN = re.compile(
    r"\b(pedido|commande|Bestellung|encomenda|ordine|bestelling)\s+\{\{\s*order_number\s*\}\}")


def _without_order_number(text: str) -> str:
    def english(m: re.Match[str]) -> str:
        determiner = m.group(1) or ("Your" if m.group(2) == "O" else "your")
        return f"{determiner} order"

    return _ORDER_SLOT_NOUN.sub(r"\1", _ORDER_SLOT_EN.sub(english, text))


def fill(text: str, values: Mapping[str, str | None]) -> str:
    """Every `{{slot}}` replaced by the ticket's value, or by a blank the agent fills."""
    return SLOT_RE.sub(lambda m: values.get(m.group(1)) or blank(m.group(1)), text)


# --- Greetings and sign-offs --------------------------------------------------------------------

LANGUAGES = ("en", "es", "fr", "de", "pt", "it", "nl")
# Spanish in the informal register the team's replies use (tú); French, German and Portuguese formal.
_GREETING = {"en": ("Hi {name},", "Hello,"), "es": ("Hola, {name}:", "Hola:"), "fr": ("Bonjour {name},", "Bonjour,"),
             "de": ("Hallo {name},", "Guten Tag,"), "pt": ("Olá, {name},", "Olá,"), "it": ("Ciao {name},", "Buongiorno,"),
             "nl": ("Hallo {name},", "Hallo,")}
_SIGN_OFF = {"en": "Kind regards,", "es": "Un saludo,", "fr": "Cordialement,", "de": "Viele Grüße",
             "pt": "Com os melhores cumprimentos,", "it": "Cordiali saluti,", "nl": "Met vriendelijke groet,"}
_TEAM = {"en": "Customer Support", "es": "Atención al cliente", "fr": "Service client", "de": "Kundenservice",
         "pt": "Apoio ao cliente", "it": "Assistenza clienti", "nl": "Klantenservice"}
_THANKS = {"en": "Thank you for getting in touch.", "es": "Gracias por escribirnos.",
           "fr": "Merci de nous avoir contactés.", "de": "Vielen Dank für Ihre Nachricht.",
           "pt": "Obrigado pelo seu contacto.", "it": "Grazie per averci scritto.",
           "nl": "Bedankt voor uw bericht."}
_SORRY = {"en": "I am sorry for the trouble this has caused.", "es": "Sentimos mucho las molestias.",
          "fr": "Nous sommes désolés pour ce désagrément.", "de": "Es tut uns leid, dass es Ärger gab.",
          "pt": "Lamentamos o incómodo.", "it": "Ci scusiamo per il disagio.",
          "nl": "Excuses voor het ongemak."}
_FOLLOW_UP = {"en": "A senior member of our team is reviewing your case and will follow up with you.",
              "es": "Un responsable de nuestro equipo está revisando tu caso y te responderá.",
              "fr": "Un responsable de notre équipe examine votre demande et reviendra vers vous.",
              "de": "Eine erfahrene Kollegin oder ein erfahrener Kollege prüft Ihren Fall und meldet sich bei Ihnen.",
              "pt": "Um responsável da nossa equipa está a analisar o seu caso e entrará em contacto consigo.",
              "it": "Un responsabile del nostro team sta esaminando il suo caso e la ricontatterà.",
              "nl": "Een ervaren collega bekijkt uw zaak en neemt contact met u op."}
_CHECKING = {"en": "I am checking this for you and will get back to you shortly.",
             "es": "Estamos revisándolo y te responderemos en breve.",
             "fr": "Nous vérifions cela et revenons vers vous rapidement.",
             "de": "Wir prüfen das und melden uns in Kürze bei Ihnen.",
             "pt": "Estamos a verificar e voltaremos a contactá-lo em breve.",
             "it": "Stiamo verificando e la ricontatteremo a breve.",
             "nl": "We zoeken dit voor u uit en komen er snel bij u op terug."}


def _lang(language: str) -> str:
    code = (language or "").lower()[:2]
    return code if code in LANGUAGES else "en"


def greeting(language: str, first_name: str) -> str:
    named, plain = _GREETING[_lang(language)]
    return named.format(name=first_name) if first_name else plain


def sign_off(language: str, signature: str = "") -> str:
    code = _lang(language)
    return f"{_SIGN_OFF[code]}\n{signature or _TEAM[code]}"


# --- Writing ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """A public passage the reply may quote and cite, by the marker the draft uses."""

    marker: int
    slug: str
    title: str
    text: str


@dataclass(frozen=True)
class Memory:
    """A remembered reply (its text holds slots), with the ticket similarity that chose it."""

    id: int
    text: str
    language: str
    article_slugs: tuple[str, ...] = ()
    similarity: float = 0.0


@dataclass
class Reply:
    text: str
    cited: list[int] = field(default_factory=list)
    memory_id: int | None = None
    blanks: list[str] = field(default_factory=list)


_WORD = re.compile(r"[^\W\d_][\w']+", re.UNICODE)
_STOP = frozenset(
    "a an the and or but if to of in on for with at by from is are was were be been it this that i my me you "
    "your we our can could would should do does did have has had not no so as how what when where will".split()
)
_SHORTER = re.compile(r"\b(short(er)?|brief(er|ly)?|concise|less detail|to the point|one sentence)\b",
                      re.IGNORECASE)
_LONGER = re.compile(r"\b(more (detail(s|ed)?|steps|thorough)|longer|step[- ]by[- ]step|all (the )?steps|"
                     r"in detail|elaborate|fuller|full (answer|procedure|steps))\b", re.IGNORECASE)
_APOLOGISE = re.compile(r"\b(apologi[sz](e|ing)|apology|(say|be) sorry)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[^\s])")


# Words of an agent's instruction that shape the reply rather than name a subject.
_DIRECTIVE_WORDS = frozenset(
    "short shorter brief briefer briefly concise less detail details detailed point one sentence more steps step "
    "thorough longer elaborate fuller full answer procedure apologise apologize apologising apologizing apology "
    "say sorry please make keep reply draft customer mention explain tell them add instead also focus about use "
    "write include all give wait".split()
)


def instruction_topic(instruction: str) -> str:
    """The words of an agent's instruction that name a subject ("explain how to recover the username" →
    "recover username"); empty for a directive alone ("shorter, please"), which must not steer retrieval."""
    words = [w for w in re.findall(r"[a-z0-9']+", instruction.lower())
             if w not in _STOP and w not in _DIRECTIVE_WORDS and len(w) > 2]
    return " ".join(words)


def terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


def sentences(text: str) -> list[str]:
    """Prose sentences of a passage: headings, list markers and fragments of under four words dropped."""
    text = re.sub(r"^\s*(#+\s.*|[-*]\s+|\d+[.)]\s+)", "", text, flags=re.MULTILINE)
    text = re.sub(r"\*\*|__|(?<!\w)\*(?!\s)|(?<!\s)\*(?!\w)", "", text)  # markdown emphasis
    found: list[str] = []
    for block in re.split(r"\n\s*\n|\n(?=\S)", text):
        for sentence in _SENTENCE_END.split(" ".join(block.split())):
            sentence = sentence.strip()
            if len(sentence.split()) >= 4 and sentence not in found:
                found.append(sentence)
    return found


def _supporting(sources: Sequence[Source], body: str, slugs: Sequence[str]) -> list[int]:
    """The passages a remembered reply rests on: its own articles first, else the passage sharing most words."""
    named: dict[str, int] = {}
    for source in sources:
        if source.slug in slugs:
            named.setdefault(source.slug, source.marker)  # one passage per article: the best-ranked
    if named:
        return list(named.values())[:2]
    words = terms(body)
    best = max(sources, key=lambda s: len(words & terms(s.text)), default=None)
    if best is not None and len(words & terms(best.text)) >= 4:
        return [best.marker]
    return []


def _with_marker(body: str, markers: Sequence[int]) -> str:
    """Citation markers after the body's first paragraph: the claim they support comes first."""
    if not markers:
        return body
    first, sep, rest = body.partition("\n\n")
    cited = " ".join(f"[{m}]" for m in markers)
    return f"{first} {cited}{sep}{rest}"


# A sentence that leans on the one before it ("After that, ...", "This takes ...") cannot open a quotation.
_LEANS_BACK = re.compile(
    r"^(?:after that|then|this|that|these|those|it|they|there|also|otherwise|if so|in that case|once (?:it|that)|"
    r"however|but|and|or|so|luego|después|esto|ensuite|puis|cela|danach|dann|das|depois|isso)\b",
    re.IGNORECASE,
)


def _excerpt(sources: Sequence[Source], query: set[str], count: int,
             wanted: AbstractSet[str] = frozenset()) -> tuple[str, int] | None:
    """The best run of `count` consecutive sentences of one passage, and its marker. The agent's instruction
    words (`wanted`) count double."""
    best: tuple[float, str, int] | None = None
    for rank, source in enumerate(sources):
        said = sentences(source.text)
        for start in range(max(1, len(said) - count + 1)):
            window = said[start : start + count]
            if not window:
                continue
            words = terms(" ".join(window))
            overlap = len(query & words) + 2 * len(wanted & words)
            # Retrieval's order counts (the first passage is the likeliest answer), then the article's own order.
            score = overlap - 0.5 * rank - 0.05 * start - (2.0 if _LEANS_BACK.match(window[0]) else 0.0)
            if best is None or score > best[0]:
                best = (score, " ".join(window), source.marker)
    if best is None or best[0] <= 0:
        return None
    return best[1], best[2]


def write(
    *, subject: str, body: str, from_name: str, from_email: str = "", language: str, sources: Sequence[Source],
    memory: Memory | None, escalated: bool, instruction: str = "", signature: str = "",
) -> Reply:
    values = ticket_values(subject=subject, body=body, from_name=from_name, from_email=from_email)
    wanted = terms(instruction_topic(instruction))
    count = 1 if _SHORTER.search(instruction) else 4 if _LONGER.search(instruction) else 2
    lang = _lang(memory.language if memory is not None else language)
    cited: list[int] = []
    if memory is not None:
        text = memory.text.strip()
        if _SHORTER.search(instruction):
            said = _SENTENCE_END.split(" ".join(text.split()))
            text = " ".join(said[: min(2, (len(said) + 1) // 2)])
        cited = _supporting(sources, text, memory.article_slugs)
        if _LONGER.search(instruction) or wanted:
            # More than the remembered reply holds: the cited article's sentences the agent asked about.
            extra = _excerpt([s for s in sources if s.marker in cited] or list(sources),
                             terms(f"{subject} {body}"), 2, wanted)
            if extra is not None and extra[0] not in text:
                text = f"{text}\n\n{extra[0]}"
                cited = list(dict.fromkeys([*cited, extra[1]]))
        text = _with_marker(text, cited)
    else:
        found = _excerpt(sources, terms(f"{subject} {body}"), count, wanted)
        if found is not None:
            quoted, marker = found
            cited = [marker]
            text = f"{_THANKS[lang]} {quoted} [{marker}]"
        else:
            text = f"{_THANKS[lang]} {_CHECKING[lang]}"
    if _APOLOGISE.search(instruction):
        text = f"{_SORRY[lang]} {text}"
    parts = [greeting(lang, values.get("first_name", "")), text]
    if escalated:
        parts.append(_FOLLOW_UP[lang])
    parts.append(sign_off(lang, signature))
    reply = "\n\n".join(parts)
    if not values.get("order_number"):
        reply = _without_order_number(reply)
    reply = fill(reply, values)
    return Reply(text=reply, cited=cited, memory_id=memory.id if memory else None, blanks=blanks(reply))


# --- Remembering a sent reply -------------------------------------------------------------------

_GREETING_LINE = re.compile(
    r"^\s*(?:hi|hello|hey|dear|good (?:morning|afternoon|evening)|hola|estimad[oa]|buenos días|bonjour|salut|"
    r"cher|chère|hallo|guten tag|liebe[rs]?|sehr geehrte[rs]?|olá|ola|caro|cara|ciao|buongiorno|beste)\b[^\n]{0,60}"
    r"[,:!]?\s*$",
    re.IGNORECASE,
)
_SIGN_OFF_LINE = re.compile(
    r"^\s*(?:kind regards|best regards|regards|best|thanks|thank you|many thanks|cheers|sincerely|"
    r"un saludo|saludos|atentamente|cordialement|bien à vous|viele grüße|mit freundlichen grüßen|beste grüße|"
    r"com os melhores cumprimentos|cumprimentos|atenciosamente|cordiali saluti|met vriendelijke groet)\b[^\n]{0,40}$",
    re.IGNORECASE,
)
_MARKER_RE = re.compile(r"\s?\[\d{1,2}\]")


def strip_markers(text: str) -> str:
    """A reply as the customer reads it: citation markers are for the agent, not the email."""
    return _MARKER_RE.sub("", text)


def templatize(text: str, values: Mapping[str, str]) -> str:
    """A sent reply as a reusable body: greeting and sign-off dropped, citation markers dropped, and the
    customer's own values turned back into slots."""
    lines = text.strip().splitlines()
    if lines and _GREETING_LINE.match(lines[0]):
        lines = lines[1:]
    for i, line in enumerate(lines):
        if _SIGN_OFF_LINE.match(line):
            lines = lines[:i]
            break
    body = strip_markers("\n".join(lines)).strip()
    # Longest values first, so "Maria Lopez" is not half-replaced by "Maria".
    for slot, value in sorted(values.items(), key=lambda kv: -len(kv[1])):
        if value and len(value) >= 2:
            body = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "{{" + slot + "}}", body)
    return re.sub(r"\n{3,}", "\n\n", body)
