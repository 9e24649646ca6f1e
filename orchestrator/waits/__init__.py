"""Durable waits in a flow body: a node that sleeps, waits for an event or for a person, and
costs nothing while it waits but a stored record (each is a built-in deferred task: its
attempt parks, and the sweeper's timer ends it through the one completion path).

    from orchestrator.waits import pause, pubsub_topic, sleep, wait_for_event
"""

from orchestrator.contracts import GcsSource, NamedSource, PubSubSource, Since, WaitEvent
from orchestrator.waits._callback import CALLBACK_PATH, CallbackPage, callback_page
from orchestrator.waits._events import (
    gcs_object,
    kumoflow_event,
    matches,
    pubsub_topic,
    send_event,
    source_key,
    wait_for_event,
    wait_topics,
)
from orchestrator.waits._form import FormField, Widget, form_fields, form_values
from orchestrator.waits._nodes import WaitKind, handle_of, waiting, waiting_for
from orchestrator.waits._pause import (
    InputRefused,
    NotWaiting,
    PauseTimedOut,
    Resumed,
    ResumeKey,
    input_uri,
    pause,
    resume,
    resume_url,
    verify,
    waiting_pauses,
)
from orchestrator.waits._sleep import sleep, sleep_until

__all__ = [
    "CALLBACK_PATH",
    "CallbackPage",
    "FormField",
    "GcsSource",
    "InputRefused",
    "NamedSource",
    "NotWaiting",
    "PauseTimedOut",
    "PubSubSource",
    "ResumeKey",
    "Resumed",
    "Since",
    "WaitEvent",
    "WaitKind",
    "Widget",
    "callback_page",
    "form_fields",
    "form_values",
    "gcs_object",
    "handle_of",
    "input_uri",
    "kumoflow_event",
    "matches",
    "pause",
    "pubsub_topic",
    "resume",
    "resume_url",
    "send_event",
    "sleep",
    "sleep_until",
    "source_key",
    "verify",
    "wait_for_event",
    "wait_topics",
    "waiting",
    "waiting_for",
    "waiting_pauses",
]
