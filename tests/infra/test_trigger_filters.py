"""Trigger filters pushed down into Terraform: a Pub/Sub subscription `filter` on attributes."""

from __future__ import annotations

from orchestrator import flow, on_pubsub
from orchestrator.cloud import subscription_filters
from orchestrator.contracts import FlowSpec


def _spec(name: str, **options: object) -> FlowSpec:
    @flow(name=name, triggers=[on_pubsub("orders", **options)])  # type: ignore[arg-type]
    def body(region: str = "") -> str:
        return region

    return body.spec


def test_attribute_filters_become_the_subscription_filter() -> None:
    one = _spec("a", attributes={"kind": "order", "tier": 'gold "x"'})
    assert subscription_filters([one]) == {
        "orders": 'attributes.kind = "order" AND attributes.tier = "gold \\"x\\""'
    }
    other = _spec("b", attributes={"kind": "refund"})
    assert subscription_filters([one, other]) == {
        "orders": '(attributes.kind = "order" AND attributes.tier = "gold \\"x\\"") OR '
        '(attributes.kind = "refund")'
    }


def test_a_flow_that_takes_every_message_or_an_odd_key_keeps_the_topic_unfiltered() -> None:
    body_only = _spec("c", match=[{"path": "a", "value": 1}])
    assert subscription_filters([_spec("a", attributes={"kind": "x"}), body_only]) == {}
    assert subscription_filters([_spec("d", attributes={"odd-key": "x"})]) == {}
