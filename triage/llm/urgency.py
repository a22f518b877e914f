"""Urgency from what a ticket says: the situations that make a ticket urgent, in the languages the desk serves.

Each cue family names a situation (money taken, access lost, a deadline, a threat to leave, contact repeated,
...) by its phrases in English, Spanish, French, German, Portuguese, Italian and Dutch. The families are the
features of the local engine's learned urgency model (with the ticket's meaning and its intent), and on their
own the rules of a model trained before urgency was learned. Phrases are matched on word starts, lowercased,
accents kept and also tried stripped (customers often type without them).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from triage.vocabulary import URGENCY_LEVELS

CUES: dict[str, tuple[str, ...]] = {
    # Fraud, an account taken over, a charge the customer did not make.
    "fraud": (
        r"fraud", r"scam", r"unauthori[sz]ed", r"hacked", r"stolen", r"didn'?t (make|authori[sz]e)", r"not me\b",
        r"fraude", r"estafa", r"no autoric", r"no reconozco", r"hackead", r"robad", r"suplantaci",
        r"escroquer", r"arnaque", r"non autoris", r"pirat[ée]", r"je n'ai (pas|jamais) (fait|effectu)",
        r"betrug", r"nicht autorisiert", r"unberechtigt", r"gehackt", r"gestohlen", r"nicht von mir",
        r"golpe", r"não autoriz", r"não reconheço", r"invadid", r"roubad", r"clonad",
        r"frode", r"truffa", r"non autorizzat", r"non riconosco", r"hackerat", r"rubat",
        r"oplichting", r"gehackt", r"niet herken",
    ),
    # Lawyers, chargebacks, consumer bodies, formal notices.
    "legal": (
        r"lawyer", r"solicitor", r"attorney", r"legal action", r"chargeback", r"charge ?back", r"\bsue\b", r"court",
        r"consumer (protection|rights)", r"trading standards", r"small claims", r"ombudsman",
        r"abogad", r"denuncia", r"demanda", r"acciones legales", r"consumo\b", r"\bocu\b", r"hoja de reclamaci",
        r"avocat", r"plainte", r"litige", r"mise en demeure", r"r[ée]trofactur", r"tribunal", r"\bufc\b",
        r"anwalt", r"rechtliche schritte", r"verbraucherzentrale", r"r[üu]ckbuchung", r"klage", r"gericht",
        r"advogad", r"processo", r"procon", r"reclame aqui", r"estorno", r"justi[çc]a",
        r"avvocat", r"azioni legali", r"storno", r"associazione consumatori", r"diffida",
        r"advocaat", r"juridische stappen", r"consumentenbond",
    ),
    # Money taken, twice, too much, or for nothing.
    "money": (
        r"charged (me )?(twice|again|double|two times)", r"double[- ]?charg", r"took (my )?money", r"money (was )?taken",
        r"debited", r"overcharg", r"paid but", r"charged .{0,30}(but|without)", r"billed twice",
        r"cobrad[oa]s? (dos veces|doble)", r"doble (cargo|cobro)", r"me (han|habéis|ha) cobrado", r"cobro duplicado",
        r"pagu[ée] (y|pero)", r"cargo",
        r"d[ée]bit[ée] (deux fois|2 fois)", r"double (d[ée]bit|pr[ée]l[èe]vement)", r"pr[ée]lev[ée]", r"d[ée]bit[ée]",
        r"pay[ée] (mais|et)",
        r"doppelt (abgebucht|belastet|berechnet)", r"zweimal (abgebucht|belastet|berechnet)", r"abgebucht", r"belastet",
        r"bezahlt,? aber",
        r"cobrad[oa]s? (duas vezes|em dobro)", r"cobran[çc]a (dupla|duplicada|indevida)", r"debitad", r"paguei (e|mas)",
        r"addebitat[oi] (due volte|2 volte)", r"doppio addebito", r"addebit", r"pagato (ma|e)",
        r"dubbel afgeschreven", r"twee keer afgeschreven", r"afgeschreven",
    ),
    # The customer cannot get into the account.
    "access": (
        r"locked out", r"can'?t (log ?in|sign ?in|access|get in)", r"cannot (log ?in|sign ?in|access)", r"no access",
        r"unable to (log ?in|sign ?in|access)", r"account (is )?(blocked|locked|suspended)",
        r"no puedo (entrar|acceder|iniciar)", r"bloquead", r"sin acceso",
        r"impossible de (me connecter|acc[ée]der|se connecter)", r"(je )?n'arrive (pas|plus) [àa] (me connecter|acc[ée]der)",
        r"compte bloqu", r"bloqu[ée]",
        r"komme nicht (mehr )?(rein|ins?)\b", r"gesperrt", r"kann mich nicht (mehr )?(anmelden|einloggen)", r"kein zugriff",
        r"não consigo (entrar|acessar|fazer login|logar)", r"sem acesso",
        r"non riesco (pi[ùu] )?ad? (accedere|entrare)", r"bloccat", r"senza accesso",
        r"kan niet (meer )?inloggen", r"geblokkeerd",
    ),
    # A date the order is needed by, or a demand for speed.
    "deadline": (
        r"\btoday\b", r"\btonight\b", r"\btomorrow\b", r"this (weekend|saturday|sunday|friday|monday)", r"\bby (mon|tue|wed|thu|fri|sat|sun)",
        r"wedding", r"birthday", r"funeral", r"flight", r"\btrip\b", r"holiday", r"leaving (on|for)", r"deadline", r"\basap\b",
        r"urgent", r"emergency", r"immediately", r"right now", r"as soon as possible",
        r"\bhoy\b", r"ma[ñn]ana", r"este (fin de semana|s[áa]bado|domingo|viernes)", r"boda", r"cumplea[ñn]os", r"viaje",
        r"vacaciones", r"urgente", r"cuanto antes", r"lo antes posible", r"inmediat",
        r"aujourd'hui", r"\bdemain\b", r"ce (week-end|weekend|samedi|dimanche|vendredi)", r"mariage", r"anniversaire",
        r"voyage", r"vacances", r"urgen", r"au plus vite", r"d[èe]s que possible", r"imm[ée]diat",
        r"\bheute\b", r"\bmorgen\b", r"dieses wochenende", r"(am|bis) (samstag|sonntag|freitag|montag)", r"hochzeit",
        r"geburtstag", r"\breise\b", r"urlaub", r"flug", r"dringend", r"sofort", r"so schnell wie m[öo]glich", r"eilig",
        r"\bhoje\b", r"amanh[ãa]", r"este (fim de semana|s[áa]bado|domingo)", r"casamento", r"anivers[áa]rio",
        r"viagem", r"f[ée]rias", r"urgente", r"o quanto antes", r"o mais r[áa]pido", r"imediat",
        r"\boggi\b", r"domani", r"questo (fine settimana|weekend|sabato)", r"matrimonio", r"compleanno", r"viaggio",
        r"vacanz", r"urgente", r"al pi[ùu] presto", r"subito", r"immediat",
        r"vandaag", r"morgen", r"bruiloft", r"verjaardag", r"dringend", r"zo snel mogelijk",
    ),
    # Contact repeated, or no answer so far.
    "repeated": (
        r"third time", r"second time", r"again\b", r"still (no|not|haven'?t|hasn'?t|waiting)", r"already (wrote|written|emailed|contacted|called|asked)",
        r"no (one|body) (has )?(replied|answered|got back)", r"nobody", r"several times", r"(\d+|two|three|multiple) (emails|times|calls)",
        r"no (answer|reply|response)", r"chasing",
        r"otra vez", r"de nuevo", r"(segunda|tercera) vez", r"ya (os |les |le )?(he )?(escrib|llam|contact)", r"sin respuesta",
        r"nadie (me )?(responde|contesta|ha respondido)", r"varias veces", r"sigo sin", r"todav[íi]a no",
        r"encore", r"(deuxi[èe]me|troisi[èe]me) fois", r"d[ée]j[àa] (écrit|ecrit|contact|appel|relanc)", r"sans (r[ée]ponse|nouvelles)",
        r"personne ne", r"plusieurs fois", r"relance", r"toujours (pas|rien|aucun)",
        r"schon wieder", r"(zweite|dritte)[sn]? mal", r"bereits (geschrieben|angerufen|kontaktiert|gemeldet)", r"keine (antwort|reaktion)",
        r"niemand (antwortet|meldet|hat)", r"mehrmals", r"mehrfach", r"immer noch (nicht|kein)", r"noch immer",
        r"de novo", r"novamente", r"(segunda|terceira) vez", r"j[áa] (escrevi|liguei|entrei em contato|mandei)", r"sem resposta",
        r"ningu[ée]m (responde|me respondeu)", r"v[áa]rias vezes", r"ainda (n[ãa]o|sem|nada)",
        r"di nuovo", r"ancora una volta", r"(seconda|terza) volta", r"ho gi[àa] (scritto|chiamato|contattato)", r"nessuna risposta",
        r"nessuno (risponde|mi ha)", r"pi[ùu] volte", r"sollecit", r"ancora (niente|nessun|non)",
        r"alweer", r"opnieuw", r"(tweede|derde) keer", r"al (gemaild|gebeld|geschreven)", r"geen (antwoord|reactie)",
    ),
    # The customer threatens to leave or to go public.
    "churn": (
        r"never (order|buy|shop)", r"(order|buy|shop)(ing)? (from|with) you again", r"close my account", r"cancel everything",
        r"go(ing)? elsewhere", r"last time", r"(bad|negative|1[- ]star|one[- ]star) review", r"take my business",
        r"nunca m[áa]s", r"no vuelvo a", r"[úu]ltima vez", r"otra tienda", r"mala (rese[ñn]a|opini[óo]n)",
        r"plus jamais", r"derni[èe]re fois", r"je ne (commanderai|ach[èe]terai) plus", r"ailleurs", r"mauvais avis",
        r"nie wieder", r"letzte[ns]? mal", r"woanders", r"nicht mehr (bestellen|kaufen)", r"schlechte bewertung",
        r"nunca mais", r"[úu]ltima vez", r"n[ãa]o compro mais", r"outra loja", r"avalia[çc][ãa]o negativa",
        r"mai pi[ùu]", r"ultima volta", r"non (comprer[òo]|ordiner[òo]) pi[ùu]", r"altrove", r"recensione negativa",
        r"nooit meer", r"laatste keer", r"ergens anders",
    ),
    # Something wrong with what arrived, or it never came.
    "problem": (
        r"damaged", r"broken", r"wrong (item|size|colou?r|product|order)", r"missing", r"never (arrived|came|received)",
        r"not (arrived|received)", r"hasn'?t (arrived|come)", r"defective", r"faulty", r"torn", r"ripped", r"declined",
        r"\broto\b", r"rota\b", r"da[ñn]ad", r"defectuos", r"equivocad", r"no (me )?(ha )?llegado", r"no lleg[óo]", r"falta",
        r"rechaza", r"denegad",
        r"ab[îi]m[ée]", r"cass[ée]", r"d[ée]fectueu", r"mauvais(e)? (article|taille|couleur|produit)", r"pas (re[çc]u|arriv)",
        r"n'est (toujours )?pas arriv", r"manqu", r"refus[ée]",
        r"kaputt", r"besch[äa]digt", r"defekt", r"falsche[nrs]? (artikel|gr[öo](ß|ss)e|farbe|ware)", r"nicht (angekommen|geliefert|erhalten)",
        r"nie angekommen", r"fehlt", r"abgelehnt",
        r"danificad", r"quebrad", r"defeituos", r"errad", r"n[ãa]o (chegou|recebi)", r"faltando", r"falta", r"recusad",
        r"rott[oa]", r"danneggiat", r"difettos", r"sbagliat", r"non [èe] (ancora )?arrivat", r"non ho (ancora )?ricevuto",
        r"manca", r"rifiutat",
        r"kapot", r"beschadigd", r"verkeerde", r"niet (aangekomen|ontvangen)", r"ontbreekt", r"geweigerd",
    ),
    # Said to be not pressing.
    "calm": (
        r"just wondering", r"no rush", r"no hurry", r"when(ever)? you (get a chance|can|have time)", r"curious", r"out of curiosity",
        r"quick question", r"just (a )?question", r"would like to know", r"before (i|we) (order|buy)", r"thinking (of|about) (buying|ordering)",
        r"sin prisa", r"cuando (pod[áa]is|puedan|tengan)", r"por curiosidad", r"una (pregunta|duda)", r"me gustar[íi]a saber", r"antes de (comprar|pedir)",
        r"pas (press[ée]|urgent)", r"quand vous (pourrez|aurez)", r"par curiosit[ée]", r"petite question", r"j'aimerais savoir",
        r"avant de (commander|acheter)",
        r"keine eile", r"wenn (ihr|sie) zeit", r"aus neugier", r"kurze frage", r"w[üu]rde gerne? wissen", r"bevor ich (bestelle|kaufe)",
        r"sem pressa", r"quando (puderem|possível)", r"por curiosidade", r"uma (d[úu]vida|pergunta)", r"gostaria de saber",
        r"antes de (comprar|encomendar)",
        r"senza fretta", r"quando (potete|avete tempo)", r"per curiosit[àa]", r"una (domanda|curiosit)", r"vorrei sapere",
        r"prima di (ordinare|comprare|acquistare)",
        r"geen haast", r"uit nieuwsgierigheid", r"korte vraag", r"zou graag willen weten",
    ),
}
FAMILIES = tuple(CUES)
_PATTERNS = {family: re.compile("|".join(f"(?:{p})" for p in phrases)) for family, phrases in CUES.items()}


def _plain(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def cue_counts(text: str) -> dict[str, int]:
    """How many times each situation is named (accented and unaccented spellings both count once)."""
    lowered = text.lower()
    variants = {lowered, _plain(lowered)}
    return {family: max(len(pattern.findall(v)) for v in variants) for family, pattern in _PATTERNS.items()}


def cue_features(texts: list[str]) -> np.ndarray:
    """One row per text: log(1 + count) per cue family, in FAMILIES order."""
    return np.log1p(np.asarray([[cue_counts(t)[f] for f in FAMILIES] for t in texts], dtype=np.float32))


# The rules a model without learned urgency uses (as before urgency was learned): explicit words only.
_URGENT = re.compile(
    r"\b(urgent(ly)?|asap|emergency|immediately|right now|fraud(ulent)?|stolen|hacked|unauthori[sz]ed|"
    r"lawyer|legal action|chargeback|sue|police)\b",
    re.IGNORECASE,
)
_HIGH = re.compile(
    r"\b(today|still (not|hasn'?t|haven'?t)|again|twice|double[- ]charged|charged twice|locked out|"
    r"can'?t (log ?in|access|sign in)|cannot (log ?in|access|sign in)|not working|broken|wrong (item|order)|"
    r"never (arrived|received)|missing|overdue|deadline)\b",
    re.IGNORECASE,
)
_LOW = re.compile(
    r"\b(just wondering|no rush|when you (get a chance|can)|curious|newsletter|feedback|review|"
    r"suggestion|information about|would like to know)\b",
    re.IGNORECASE,
)


def names_a_costly_case(text: str) -> bool:
    """Fraud or a legal threat (a chargeback included), in any of the cue languages: urgent whatever else
    the ticket says, since such a ticket left waiting costs the most."""
    cues = cue_counts(text)
    return bool(cues["fraud"] or cues["legal"])


def urgency_by_rules(text: str, sentiment_compound: float) -> str:
    """The stated rules, for a model trained without tickets labelled with urgency; the cue families add
    the costly cases (fraud, legal threats) in the other languages."""
    if _URGENT.search(text) or names_a_costly_case(text):
        return "urgent"
    if _HIGH.search(text) or sentiment_compound <= -0.75:
        return "high"
    if _LOW.search(text):
        return "low"
    return "normal"


URGENCIES = URGENCY_LEVELS


@dataclass
class UrgencyModel:
    """Urgency learned from labelled tickets: the ticket's meaning (its embedding), the situations it names
    (cue families) and its intent (a newsletter question is rarely urgent, a payment problem often is)."""

    classifier: LogisticRegression
    intents: list[str]  # the intent model's labels, in its column order

    @classmethod
    def fit(cls, texts: list[str], urgencies: list[str], embeddings: np.ndarray, intents: list[str],
            intent_labels: list[str], weights: np.ndarray | None = None, c: float = 2.0) -> UrgencyModel:
        if len(set(urgencies)) < 2:
            raise ValueError("learning urgency needs examples of at least two urgencies")
        known = {label: i for i, label in enumerate(intent_labels)}
        onehot = np.zeros((len(texts), len(intent_labels)), dtype=np.float32)
        for row, intent in enumerate(intents):
            if intent in known:
                onehot[row, known[intent]] = 1.0
        features = _features(texts, embeddings, onehot)
        classifier = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
        classifier.fit(features, urgencies, sample_weight=weights)
        return cls(classifier, list(intent_labels))

    def predict(self, texts: list[str], embeddings: np.ndarray,
                intent_probabilities: np.ndarray) -> list[tuple[str, float]]:
        probabilities = self.classifier.predict_proba(_features(texts, embeddings, intent_probabilities))
        labels = [str(c) for c in self.classifier.classes_]
        return [(labels[i], float(row[i])) for row, i in zip(probabilities, probabilities.argmax(axis=1), strict=True)]


def _features(texts: list[str], embeddings: np.ndarray, intents: np.ndarray) -> np.ndarray:
    return np.hstack([embeddings, _CUE_SCALE * cue_features(texts), _INTENT_SCALE * intents])


# Embedding components are about 0.05 each (unit vectors of 384 dimensions); the cue and intent columns are
# scaled so the regulariser does not drown them.
_CUE_SCALE = 1.0
_INTENT_SCALE = 0.5
