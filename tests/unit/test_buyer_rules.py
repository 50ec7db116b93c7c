"""Buyer-side marketplace rules (R8, R9, R10, region scoping), pricing and metering."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from mlmarket.controllers.metering import Meter
from mlmarket.domain import algorithms, marketplace, pricing, registry
from mlmarket.domain.catalog import EntityState
from mlmarket.domain.marketplace import Origin
from mlmarket.services.marketplace.usage import Terms, customer_reference, daily, report
from mlmarket.shapes.sagemaker import (
    ChannelSpecification,
    ProductionVariant,
    TrainingSpecification,
)
from mlmarket.storage.metadata import MetadataStore, UsageStore

ORIGIN = Origin(
    ProductId="prod-abc",
    Listing="listing",
    Arn="arn:aws:sagemaker:us-east-1:123456789012:model-package/p",
    Seller="123456789012",
    RealtimeInstanceTypes=None,
    TransformInstanceTypes=None,
    TrainingInstanceTypes=None,
)
BUYER = "210987654321"


def test_every_sagemaker_region_has_one_marketplace_account_of_its_own() -> None:
    accounts = {marketplace.copy_account(r) for r in marketplace.availability()}
    assert len(accounts) == len(marketplace.availability())
    assert marketplace.copy_account("us-east-2") == "057799348421"
    assert marketplace.region_of_copy_account("985815980388") == "eu-west-1"
    made_up = marketplace.copy_account("ap-northeast-3")
    assert len(made_up) == 12 and made_up == marketplace.copy_account("ap-northeast-3")
    assert marketplace.region_of_copy_account(made_up) == "ap-northeast-3"
    assert not marketplace.is_copy_account("123456789012")


def test_listed_names_fit_sagemakers_63_characters() -> None:
    token = "0123456789abcdef" * 2
    assert marketplace.listed_name("My-Model", token) == f"my-model-{token}"
    long = marketplace.listed_name("a" * 29 + "-" + "b" * 40, token)
    assert len(long) <= 63 and long == "a" * 29 + "-" + token


def test_a_marketplace_arn_must_name_the_callers_region() -> None:
    assert marketplace.wrong_region("us-east-1", "us-east-1") is None
    assert (
        marketplace.wrong_region("eu-west-1", "us-east-1")
        == "ARN should be scoped to correct region: us-east-1"
    )


def test_async_and_serverless_endpoints_refuse_marketplace_models() -> None:
    instances: ProductionVariant = {"VariantName": "v", "InstanceType": "ml.m5.large"}
    assert marketplace.refused_endpoint_feature(instances, async_config=False) is None
    assert marketplace.refused_endpoint_feature(instances, async_config=True) == (
        "Marketplace images are not supported when specifying an AsyncInferenceConfig."
    )
    assert marketplace.refused_endpoint_feature(
        {"VariantName": "v", "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 1}},
        async_config=False,
    ) == ("Marketplace images are not supported when specifying a ServerlessConfig.")


def test_spot_training_with_a_marketplace_algorithm_waits_an_hour_whatever_was_asked() -> None:
    fixed = marketplace.spot_stopping_condition(
        {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 7200}
    )
    assert fixed == {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 3600}
    assert (
        marketplace.spot_stopping_condition({"MaxRuntimeInSeconds": 60})["MaxWaitTimeInSeconds"]
        == 3600
    )
    with pytest.raises(ValueError, match="at most 3600"):
        marketplace.spot_stopping_condition({"MaxRuntimeInSeconds": 3601})


def csv_channel(name: str, required: bool = False) -> ChannelSpecification:
    return {
        "Name": name,
        "IsRequired": required,
        "SupportedContentTypes": ["text/csv"],
        "SupportedInputModes": ["File"],
    }


def test_a_job_must_fit_what_its_algorithm_declares() -> None:
    training: TrainingSpecification = {
        "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/algo:1",
        "SupportedTrainingInstanceTypes": ["ml.m5.large"],
        "TrainingChannels": [csv_channel("train", required=True), csv_channel("validation")],
        "SupportedHyperParameters": [
            {
                "Name": "epochs",
                "Type": "Integer",
                "DefaultValue": "10",
                "Range": {
                    "IntegerParameterRangeSpecification": {"MinValue": "1", "MaxValue": "99"}
                },
            },
            {"Name": "target", "Type": "FreeText", "IsRequired": True},
            {
                "Name": "loss",
                "Type": "Categorical",
                "Range": {"CategoricalParameterRangeSpecification": {"Values": ["l1", "l2"]}},
            },
            {"Name": "rate", "Type": "Continuous"},
        ],
    }

    def check(**changes: Any) -> dict[str, str]:
        job: dict[str, Any] = {
            "instance_type": "ml.m5.large",
            "instance_count": 1,
            "channels": ["train"],
            "hyperparameters": {"target": "y"},
        }
        job.update(changes)
        return algorithms.check_job(training, "arn", **job)

    assert check() == {"target": "y", "epochs": "10"}
    assert check(hyperparameters={"target": "y", "loss": "l1", "rate": "0.5"})["loss"] == "l1"
    assert check(hyperparameters={"target": "y", "sagemaker_program": "x"})["epochs"] == "10"
    for changes, message in (
        ({"instance_type": "ml.c5.xlarge"}, "not supported for training"),
        ({"instance_count": 2}, "does not support distributed training"),
        ({"channels": ["validation"]}, "requires the channel train"),
        ({"channels": ["train", "test"]}, "Channel test is not supported"),
        ({"hyperparameters": {"target": "y", "depth": "3"}}, "Hyperparameter depth"),
        ({"hyperparameters": {}}, "requires the hyperparameter target"),
        ({"hyperparameters": {"target": "y", "epochs": "ten"}}, "'ten' is not an Integer"),
        ({"hyperparameters": {"target": "y", "epochs": "100"}}, r"outside its range \[1, 99\]"),
        ({"hyperparameters": {"target": "y", "loss": "huber"}}, "is not one of l1, l2"),
        ({"hyperparameters": {"target": "y", "rate": "fast"}}, "not a Continuous value"),
    ):
        with pytest.raises(algorithms.JobDoesNotFit, match=message):
            check(**changes)


def test_only_listed_instance_types_may_run_a_version() -> None:
    arn = "arn:aws:sagemaker:us-east-1:865070037744:model-package/x"
    assert marketplace.unsupported_instance_type("ml.m5.large", ["ml.m5.large"], "u", arn) is None
    refused = marketplace.unsupported_instance_type("ml.c5.large", ["ml.m5.large"], "u", arn)
    assert refused == (
        f"The instance type ml.c5.large is not supported for u by {arn}. "
        "Supported instance types: ml.m5.large."
    )
    assert "Supported instance types: none." in str(
        marketplace.unsupported_instance_type("ml.c5.large", [], "u", arn)
    )


def test_each_dimension_is_described_in_a_buyers_words() -> None:
    described = [
        marketplace.describe_dimension(k)
        for k in ("ml.m5.large.m.i.r", "ml.c5.xlarge.m.i.b", "ml.p3.2xlarge.a.t")
    ]
    assert described == [
        "ml.m5.large, real-time inference, per instance hour",
        "ml.c5.xlarge, batch transform, per instance hour",
        "ml.p3.2xlarge, training, per instance hour",
    ]
    assert marketplace.describe_dimension("inference.count.m.i.c") == "per inference"
    assert marketplace.describe_dimension("something.else") == "something.else"


def test_dimensions_come_from_the_supported_instance_types() -> None:
    algorithm = marketplace.SupportedInstanceTypes(
        RealtimeInference=["ml.m5.large"],
        BatchTransform=["ml.c5.xlarge"],
        Training=["ml.p3.2xlarge"],
    )
    assert marketplace.dimensions_of(algorithm) == [
        "ml.m5.large.m.i.r",
        "ml.c5.xlarge.m.i.b",
        "ml.p3.2xlarge.a.t",
        "inference.count.m.i.c",
    ]
    package = marketplace.SupportedInstanceTypes(
        RealtimeInference=[], BatchTransform=["ml.c5.xlarge"]
    )
    assert marketplace.dimensions_of(package) == ["ml.c5.xlarge.m.i.b"]  # no calls to count


def test_usage_is_billed_per_started_minute() -> None:
    assert marketplace.billed_hours(0) == 0
    assert marketplace.billed_hours(1) == pytest.approx(1 / 60)
    assert marketplace.billed_hours(60) == pytest.approx(1 / 60)
    assert marketplace.billed_hours(61) == pytest.approx(2 / 60)


def test_the_metering_header_sets_the_units_of_a_call() -> None:
    assert marketplace.consumed_units(None) == 1
    assert marketplace.consumed_units('{"Dimension": "inference.count", "ConsumedUnits": 4}') == 4
    assert marketplace.consumed_units("not json") == 1
    assert marketplace.consumed_units('{"ConsumedUnits": -2}') == 1


def test_bare_engine_image_ids_are_not_image_names() -> None:
    assert registry.naming_problem("sha256:" + "ab" * 32) is not None
    assert registry.naming_problem("abcdef012345") is not None
    assert registry.naming_problem("123456789012.dkr.ecr.us-east-1.amazonaws.com/m:1") is None
    assert registry.naming_problem("mlmarket-test/echo:latest") is None
    assert registry.naming_problem("localhost:5000/team/model@sha256:" + "ab" * 32) is None
    for unparseable in ("s3://bucket/key", "\U0001f600", "Upper/case", "", "a" * 300):
        assert "not a valid container image reference" in str(registry.naming_problem(unparseable))


def test_pricing_terms_are_parsed_and_checked() -> None:
    usage = [
        {
            "Type": "UsageBasedPricingTerm",
            "CurrencyCode": "USD",
            "RateCards": [{"RateCard": [{"DimensionKey": "ml.m5.large.m.i.r", "Price": "0.5"}]}],
        }
    ]
    prices, trial = pricing.parse("Usage", usage)
    assert prices == {"ml.m5.large.m.i.r": "0.5"} and trial is None
    offer = EntityState(PricingModel="Usage", Terms=usage)
    assert pricing.unpriced(offer, ["ml.m5.large.m.i.r"]) == []
    assert pricing.unpriced(offer, ["ml.m5.large.m.i.b"]) == ["ml.m5.large.m.i.b"]
    assert pricing.unpriced(EntityState(PricingModel="Free"), ["ml.m5.large.m.i.r"]) == []
    assert pricing.unpriced(None, ["a.m.i.b", "a.m.i.b"]) == ["a.m.i.b"]
    trial_term = {"Type": "FreeTrialPricingTerm", "Duration": "P121D", "Grants": []}
    with pytest.raises(pricing.InvalidPricing, match="5 to 120 days"):
        pricing.parse("Usage", [*usage, trial_term])
    _, trial = pricing.parse("Usage", [*usage, dict(trial_term, Duration="P30D")])
    assert trial == {"Days": 30, "Dimensions": []}
    with pytest.raises(pricing.InvalidPricing, match="USD"):
        pricing.parse("Usage", [dict(usage[0], CurrencyCode="EUR")])
    with pytest.raises(pricing.InvalidPricing, match="no usage-based"):
        pricing.parse("Free", usage)


def _usage(prices: dict[str, str]) -> list[dict[str, object]]:
    return [
        {
            "Type": "UsageBasedPricingTerm",
            "CurrencyCode": "USD",
            "RateCards": [
                {"RateCard": [{"DimensionKey": k, "Price": v} for k, v in prices.items()]}
            ],
        }
    ]


def test_the_pricing_pages_short_inference_key_is_the_catalogs_long_one() -> None:
    terms = pricing.normalized(_usage({"m.i.c": "0.01", "ml.m5.large.m.i.r": "0.5"}))
    prices, _ = pricing.parse("Usage", terms)
    assert prices == {"inference.count.m.i.c": "0.01", "ml.m5.large.m.i.r": "0.5"}
    offer = EntityState(PricingModel="Usage", Terms=terms)
    assert pricing.unpriced(offer, ["inference.count.m.i.c", "ml.m5.large.m.i.r"]) == []


@pytest.mark.parametrize(
    "key", ["ml.m5.large", "ml.m5.large.realtime", "inference.count", "m5.large.m.i.r", ""]
)
def test_a_key_that_is_no_dimension_is_refused_naming_the_keys(key: str) -> None:
    with pytest.raises(pricing.InvalidPricing, match=r"the keys are <instance type>\.m\.i\.r"):
        pricing.parse("Usage", _usage({key: "1"})) if key else pricing.parse(
            "Usage", [*_usage({"ml.m5.large.m.i.r": "1"}), _trial([key])]
        )


def _trial(keys: list[str]) -> dict[str, object]:
    return {
        "Type": "FreeTrialPricingTerm",
        "Duration": "P30D",
        "Grants": [{"DimensionKey": k} for k in keys],
    }


def test_a_free_trial_grants_hourly_keys_only() -> None:
    base = _usage({"ml.m5.large.m.i.r": "1", "m.i.c": "0.1"})
    _, trial = pricing.parse("Usage", pricing.normalized([*base, _trial(["ml.m5.large.m.i.r"])]))
    assert trial == {"Days": 30, "Dimensions": ["ml.m5.large.m.i.r"]}
    with pytest.raises(pricing.InvalidPricing, match="hourly pricing only"):
        pricing.parse("Usage", pricing.normalized([*base, _trial(["m.i.c"])]))


class Clock:
    def __init__(self) -> None:
        self.value = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self.value

    def monotonic(self) -> float:
        return self.value.timestamp()

    def advance(self, seconds: float) -> None:
        self.value += dt.timedelta(seconds=seconds)


def test_meters_sum_instance_time_and_counts_for_each_side(
    tmp_path: Path, database_url: str
) -> None:
    store = MetadataStore(database_url)
    clock = Clock()
    meter = Meter(UsageStore(store), clock)
    arn = "arn:aws:sagemaker:us-east-1:210987654321:endpoint/e"
    running = meter.start(BUYER, ORIGIN, "ml.m5.large.m.i.r", arn, 2)
    meter.count(BUYER, ORIGIN, arn, 3)
    meter.count(BUYER, ORIGIN, arn, 2)
    clock.advance(90)  # two started minutes, on two instances
    terms = Terms({"ml.m5.large.m.i.r": "0.60"})

    def prices(buyer: str, product: str) -> Terms | None:
        return terms if (buyer, product) == (BUYER, "prod-abc") else None

    [counted, hourly] = report(meter, BUYER, "BUYER", None, prices)
    assert (counted["Dimension"], counted["Quantity"]) == ("inference.count.m.i.c", 5)
    assert hourly["Quantity"] == pytest.approx(4 / 60, abs=1e-6)
    assert hourly["Charge"] == "0.0400"
    meter.stop(running)
    clock.advance(3600)  # a stopped meter stops counting
    [_, hourly] = report(meter, BUYER, "BUYER", None, prices)
    assert hourly["Quantity"] == pytest.approx(4 / 60, abs=1e-6)
    seller = report(meter, ORIGIN["Seller"], "SELLER", "prod-abc", prices)
    assert {r["CustomerReference"] for r in seller} == {customer_reference(ORIGIN["Seller"], BUYER)}
    assert all("ResourceArn" not in r for r in seller)
    assert report(meter, BUYER, "SELLER", None, prices) == []
    store.close()


def test_usage_within_a_free_trial_is_not_charged(tmp_path: Path, database_url: str) -> None:
    store = MetadataStore(database_url)
    clock = Clock()
    meter = Meter(UsageStore(store), clock)
    trial_ends = clock.value + dt.timedelta(minutes=30)
    terms = Terms(
        {"ml.m5.large.m.i.b": "0.60", "ml.m5.large.m.i.r": "0.60"},
        frozenset({"ml.m5.large.m.i.b"}),
        trial_ends,
    )
    meter.span(BUYER, ORIGIN, "ml.m5.large.m.i.b", "a", 1, clock.value, 600)  # inside
    meter.span(
        BUYER, ORIGIN, "ml.m5.large.m.i.b", "b", 1, trial_ends - dt.timedelta(minutes=10), 1800
    )
    meter.span(BUYER, ORIGIN, "ml.m5.large.m.i.r", "c", 1, clock.value, 600)  # not granted
    clock.advance(7200)
    charges = {
        r["ResourceArn"]: r["Charge"]
        for r in report(meter, BUYER, "BUYER", None, lambda buyer, product: terms)
    }
    # a: 10 free minutes; b: 20 of its 30 minutes after the trial; c: 10 paid minutes
    assert charges == {"a": "0.0000", "b": "0.2000", "c": "0.1000"}
    store.close()


def test_counted_units_are_summed_over_flushes_and_free_only_during_the_trial(
    database_url: str,
) -> None:
    store = MetadataStore(database_url)
    clock = Clock()
    meter = Meter(UsageStore(store), clock)
    trial_ends = clock.value + dt.timedelta(minutes=30)
    terms = Terms(
        {marketplace.INFERENCE_COUNT: "0.01"}, frozenset({marketplace.INFERENCE_COUNT}), trial_ends
    )
    for _minute in range(60):  # one flush a minute, 3 units each: 30 flushes in the trial
        meter.count(BUYER, ORIGIN, "a", 3)
        meter.flush()
        clock.advance(60)
    meter.count(BUYER, ORIGIN, "b", 7)  # another endpoint, after the trial, not yet flushed
    [a, b] = report(meter, BUYER, "BUYER", None, lambda buyer, product: terms)
    assert (a["ResourceArn"], a["Quantity"], a["Charge"]) == ("a", 180, "0.9000")
    assert (b["ResourceArn"], b["Quantity"], b["Charge"]) == ("b", 7, "0.0700")
    [seen] = report(meter, ORIGIN["Seller"], "SELLER", "prod-abc", lambda buyer, product: terms)
    assert (seen["Quantity"], seen["Charge"]) == (187, "0.9700")
    store.close()


def test_taking_an_endpoint_over_ends_the_intervals_its_previous_server_left_open(
    tmp_path: Path, database_url: str
) -> None:
    store = MetadataStore(database_url)
    clock = Clock()
    before = Meter(UsageStore(store), clock)
    before.start(BUYER, ORIGIN, "ml.m5.large.m.i.r", "taken", 1)
    before.start(BUYER, ORIGIN, "ml.m5.large.m.i.r", "elsewhere", 1)  # another server's
    clock.advance(600)
    successor = Meter(UsageStore(store), clock)
    successor.end_open("taken")
    clock.advance(6000)
    rows = report(successor, BUYER, "BUYER", None, lambda buyer, product: None)
    hours = {r["ResourceArn"]: r["Quantity"] for r in rows}
    assert hours["taken"] == pytest.approx(10 / 60, abs=1e-6)
    assert hours["elsewhere"] == pytest.approx(110 / 60, abs=1e-6)  # still running
    store.close()


def test_a_daily_report_splits_instance_time_at_midnight_and_keeps_the_trial(
    database_url: str,
) -> None:
    store = MetadataStore(database_url)
    clock = Clock()
    clock.value = dt.datetime(2026, 12, 1, 23, 0, tzinfo=dt.UTC)
    meter = Meter(UsageStore(store), clock)
    trial_ends = dt.datetime(2026, 12, 2, 0, 30, tzinfo=dt.UTC)
    terms = Terms(
        {"ml.m5.large.m.i.r": "0.60", marketplace.INFERENCE_COUNT: "0.01"},
        frozenset({marketplace.INFERENCE_COUNT}),
        trial_ends,
    )
    running = meter.start(BUYER, ORIGIN, "ml.m5.large.m.i.r", "e", 1)  # 23:00 → 01:00
    meter.count(BUYER, ORIGIN, "e", 4)  # on the 1st, in the trial
    meter.flush()
    clock.advance(3600)
    clock.advance(3600)
    meter.count(BUYER, ORIGIN, "e", 6)  # at 01:00 on the 2nd, after it
    meter.stop(running)
    days = daily(
        meter,
        BUYER,
        "BUYER",
        None,
        lambda buyer, product: terms,
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 3, tzinfo=dt.UTC),
    )
    shown = {(r["Day"], r["Dimension"]): (r["Quantity"], r["Charge"]) for r in days}
    assert shown == {
        ("2026-12-01", "inference.count.m.i.c"): (4, "0.0000"),
        ("2026-12-01", "ml.m5.large.m.i.r"): (1.0, "0.6000"),
        ("2026-12-02", "inference.count.m.i.c"): (6, "0.0600"),
        ("2026-12-02", "ml.m5.large.m.i.r"): (1.0, "0.6000"),
    }
    # the days add up to the whole report
    [counted, hourly] = report(meter, BUYER, "BUYER", None, lambda buyer, product: terms)
    assert (counted["Quantity"], hourly["Quantity"]) == (10, 2.0)
    store.close()


def test_counted_units_are_dated_when_called_not_when_written(database_url: str) -> None:
    """A report whose window ends just after a call holds it, though the call's count reached
    the database after the window ended (the console's usage page asks up to "now")."""
    store = MetadataStore(database_url)
    clock = Clock()
    meter = Meter(UsageStore(store), clock)
    arn = "arn:aws:sagemaker:us-east-1:210987654321:endpoint/e"
    called = clock.now()
    meter.count(BUYER, ORIGIN, arn, 1)
    clock.advance(0.5)
    meter.count(BUYER, ORIGIN, arn, 1)
    clock.advance(1)  # the flush comes a second later
    meter.flush()
    (total,) = UsageStore(store).counted(buyer=BUYER, before=called + dt.timedelta(seconds=0.6))
    assert total.quantity == 2
    store.close()
