"""What a ticket says, apart from how it is wrapped: the local classifier reads the request, not the mail.

A ticket is a subject, a greeting, the request and its context, a sign-off, a signature and often a quoted
earlier message. Only the request and its context say what the customer wants; greetings, sign-offs and
signatures are the same for every intent (and every language's greeting pulls towards that language's
examples), and a quoted message may be about something else. This module cuts a ticket into the sentences
that can carry the request, in the languages the demo serves and the ones mail clients write headers in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from triage.intake.mime import strip_reply

# A line that is only a greeting ("Hi Anna,", "Sehr geehrte Damen und Herren,") or a sign-off ("Thanks!",
# "Un saludo,", "Mit freundlichen Grüßen"), optionally followed by a name. Matched on a whole line.
_GREETING = (
    r"hi|hello|hey|hiya|dear(?:\s+\w+)?|good (?:morning|afternoon|evening)|greetings|to whom it may concern"
    r"|hola|buenos d[ií]as|buenas(?: tardes| noches)?|estimad[oa]s?(?:\s+\w+)?|saludos"
    r"|bonjour|bonsoir|salut|cher|ch[eè]re|madame|monsieur|madame,? monsieur"
    r"|hallo|guten (?:tag|morgen|abend)|moin|servus|liebe[rs]?(?:\s+\w+)?|sehr geehrte[rs]?(?:\s+[\w ]+)?"
    r"|ol[áa]|oi|bom dia|boa (?:tarde|noite)|prezad[oa]s?(?:\s+\w+)?|car[oa]s?(?:\s+\w+)?"
    r"|ciao|buongiorno|buonasera|salve|gentil[ei](?:\s+\w+)?|spettabile(?:\s+\w+)?"
    r"|hoi|beste(?:\s+\w+)?|goedemiddag|goedemorgen|geachte(?:\s+[\w ]+)?"
)
_CLOSING = (
    r"thanks?(?: you)?(?: (?:so|very) much)?(?: in advance)?|many thanks|cheers|regards|best(?: regards| wishes)?"
    r"|kind regards|warm regards|sincerely|yours(?: sincerely| faithfully)?|thx|ty"
    r"|gracias(?: de antemano| por adelantado)?|muchas gracias|un saludo|saludos(?: cordiales)?|atentamente|cordialmente"
    r"|merci(?: d'avance| beaucoup| par avance)?|cordialement|bien (?:à vous|cordialement)|salutations"
    r"|bonne (?:journée|soirée)|sinc[eè]res salutations"
    r"|danke(?: schön| sehr| im voraus)?|vielen dank(?: im voraus)?|viele grüße|liebe grüße|beste grüße"
    r"|(?:mit )?freundliche[nm]? grü(?:ß|ss)en|mfg|lg|vg|gruß|grüße"
    r"|obrigad[oa](?: desde já)?|muito obrigad[oa]|cumprimentos|atenciosamente|abraços?|um abraço|att"
    r"|grazie(?: mille| in anticipo)?|cordiali saluti|distinti saluti|saluti|un saluto|a presto"
    r"|bedankt|dank je(?: wel)?|met vriendelijke groet(?:en)?|groeten|groetjes"
)
_NAME = r"(?:\s+[\w.'’-]+){0,3}"
_GREETING_LINE = re.compile(rf"^\W*(?:(?:{_GREETING})[\s,!:.]*)+{_NAME}\W*$", re.IGNORECASE)
_CLOSING_LINE = re.compile(rf"^\W*(?:{_CLOSING}){_NAME}\W*$", re.IGNORECASE)
# After a sign-off, this many short lines at most are a signature (name, role, phone), not more request.
_SIGNATURE_LINES = 5
# A greeting at the start of a line that goes on with the request ("Hi, I ordered ..."): cut the greeting.
_GREETING_PREFIX = re.compile(rf"^\W*(?:{_GREETING})(?:\s+[\w.'’-]+)?\s*[,!:]\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?¿¡…])\s+(?=[^\s])|\n+")
_SUBJECT_PREFIX = re.compile(r"^(?:\s*(?:re|fw|fwd|aw|wg|tr|rv|r|enc|res)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
MAX_SENTENCES = 8
_MIN_CHARS = 8


@dataclass(frozen=True)
class TicketRequest:
    subject: str  # without Re:/Fwd: prefixes
    sentences: tuple[str, ...]  # the body's sentences that can carry the request, in order

    @property
    def text(self) -> str:
        """Subject and request as one text: what the whole-ticket scorer reads."""
        return "\n".join(part for part in (self.subject, " ".join(self.sentences)) if part).strip()


def ticket_request(subject: str, body: str) -> TicketRequest:
    """The subject and the sentences of the customer's own new words, without wrapping."""
    subject = _SUBJECT_PREFIX.sub("", " ".join((subject or "").split()))
    own = strip_reply(body or "")
    lines: list[str] = []
    rows = own.split("\n")
    for index, line in enumerate(rows):
        if _CLOSING_LINE.match(line):
            rest = [r for r in rows[index + 1:] if r.strip()]
            if len(rest) <= _SIGNATURE_LINES and all(len(r) <= 60 for r in rest):
                break
            continue
        if _GREETING_LINE.match(line):
            continue
        while (cut := _GREETING_PREFIX.sub("", line, count=1)) != line:
            line = cut
        line = line.strip()
        if line:
            lines.append(line)
    sentences = [s.strip() for s in _SENTENCE_END.split("\n".join(lines)) if len(s.strip()) >= _MIN_CHARS]
    if not sentences and own.strip():
        sentences = [" ".join(own.split())]
    return TicketRequest(subject=subject, sentences=tuple(sentences[:MAX_SENTENCES]))
