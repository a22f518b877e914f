"""Every table of the triage app, one module per part of the product, all re-exported here: code imports
models from `triage.models`, and migrations find `list_workdays` and `new_ticket_token` where they always were."""

from __future__ import annotations

from triage.models.common import LOCAL_EMBEDDING_DIM as LOCAL_EMBEDDING_DIM
from triage.models.common import URGENCY_ORDER as URGENCY_ORDER
from triage.models.common import BudgetAction as BudgetAction
from triage.models.common import Fallback as Fallback
from triage.models.common import list_workdays as list_workdays
from triage.models.controls import AuditEvent as AuditEvent
from triage.models.controls import Contract as Contract
from triage.models.controls import GateRule as GateRule
from triage.models.controls import PromptVersion as PromptVersion
from triage.models.controls import ShadowConfig as ShadowConfig
from triage.models.controls import SlaPolicy as SlaPolicy
from triage.models.controls import Switches as Switches
from triage.models.customers import ApiKey as ApiKey
from triage.models.customers import Customer as Customer
from triage.models.customers import IdempotencyRecord as IdempotencyRecord
from triage.models.desk import Correction as Correction
from triage.models.desk import Macro as Macro
from triage.models.desk import OutboundEmail as OutboundEmail
from triage.models.desk import ReplyMemory as ReplyMemory
from triage.models.desk import ReviewAction as ReviewAction
from triage.models.jobs import EvalRun as EvalRun
from triage.models.jobs import Job as Job
from triage.models.pipeline import Citation as Citation
from triage.models.pipeline import Draft as Draft
from triage.models.pipeline import GateResult as GateResult
from triage.models.pipeline import ModelCall as ModelCall
from triage.models.pipeline import RouteDecision as RouteDecision
from triage.models.pipeline import ShadowResult as ShadowResult
from triage.models.pipeline import TriageRun as TriageRun
from triage.models.taxonomy import Intent as Intent
from triage.models.taxonomy import IntentExample as IntentExample
from triage.models.taxonomy import LocalModel as LocalModel
from triage.models.tickets import Message as Message
from triage.models.tickets import MessageAttachment as MessageAttachment
from triage.models.tickets import Ticket as Ticket
from triage.models.tickets import TicketNote as TicketNote
from triage.models.tickets import new_ticket_token as new_ticket_token
from triage.routing import OTHER_INTENT as OTHER_INTENT  # the label for a ticket that fits no intent
from triage.vocabulary import Engine as Engine
from triage.vocabulary import Lane as Lane
from triage.vocabulary import Risk as Risk
from triage.vocabulary import Sentiment as Sentiment
from triage.vocabulary import Tier as Tier
from triage.vocabulary import Urgency as Urgency
