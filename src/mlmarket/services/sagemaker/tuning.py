"""SageMaker hyperparameter tuning jobs: Create, Describe, List, Stop, and the training jobs of
one. The tuning controller runs them; a request is checked here in full before it is accepted,
its training job definition by the same checks CreateTrainingJob makes."""

from __future__ import annotations

from typing import Any

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers.tuning import TuningController, TuningJob, outcome, parents
from mlmarket.domain import kinds, pagination, specs, tuning
from mlmarket.domain import quotas as quota
from mlmarket.domain.training import FINAL, TrainingJobSpec
from mlmarket.domain.tuning import (
    Dimension,
    InvalidTuningJob,
    Trial,
    TuningJobSpec,
    TuningJobState,
)
from mlmarket.protocol.errors import ResourceInUse, ResourceNotFound, validation_exception
from mlmarket.protocol.operations import operation
from mlmarket.services.listing import list_resources
from mlmarket.services.quotas import Quotas
from mlmarket.services.sagemaker.jobs import Jobs
from mlmarket.services.sagemaker.training import TrainingProvider
from mlmarket.shapes import sagemaker as shapes
from mlmarket.storage.metadata import MetadataStore, Resource


class TuningProvider:
    def __init__(
        self,
        store: MetadataStore,
        clock: Clock,
        controller: TuningController,
        training: TrainingProvider,
        quotas: Quotas,
    ) -> None:
        self.store = store
        self.clock = clock
        self.controller = controller
        self.training = training
        self.quotas = quotas
        self.jobs = Jobs(
            store,
            kinds.TUNING_JOB,
            "tuning job",
            status=lambda job: job.state["HyperParameterTuningJobStatus"],
            missing=lambda name: ResourceNotFound(
                f"Amazon SageMaker can't find a tuning job called {name}. Type another name."
            ),
            taken=lambda name, arn: ResourceInUse(
                f"A hyperparameter tuning job with the name, {name}, already exists. Choose a "
                "different name."
            ),
        )

    @operation("CreateHyperParameterTuningJob")
    def create_hyper_parameter_tuning_job(
        self, ctx: RequestContext, p: TuningJobSpec
    ) -> dict[str, Any]:
        name = p["HyperParameterTuningJobName"]
        self.jobs.require_unique(ctx, name)
        arn = self.jobs.arn(ctx, name)
        try:
            spec = self._checked(ctx, p)
        except InvalidTuningJob as exc:
            raise validation_exception(str(exc)) from None
        now = self.clock.now()
        job: TuningJob = Resource(
            ctx.account_id,
            ctx.region,
            kinds.TUNING_JOB,
            name.lower(),
            arn,
            now,
            now,
            spec,
            TuningJobState(),
        )
        self.controller.submit(job, self.jobs.insert)
        return {"HyperParameterTuningJobArn": arn}

    def _checked(self, ctx: RequestContext, p: TuningJobSpec) -> TuningJobSpec:
        """The spec to keep, or InvalidTuningJob (ValidationException) saying what is wrong."""
        if p.get("TrainingJobDefinitions"):
            raise InvalidTuningJob(
                "TrainingJobDefinitions is not supported by mlmarket: give one "
                "TrainingJobDefinition."
            )
        given = p.get("TrainingJobDefinition")
        if given is None:
            raise InvalidTuningJob("TrainingJobDefinition must be specified.")
        definition = tuning.with_resource_config(given)
        if p.get("Autotune"):
            raise InvalidTuningJob("Autotune is not supported by mlmarket.")
        config = p["HyperParameterTuningJobConfig"]
        strategy = config["Strategy"]
        if strategy == "Hyperband" or config.get("StrategyConfig"):
            raise InvalidTuningJob(
                "The Hyperband strategy is not supported by mlmarket: use Bayesian, Random or Grid."
            )
        objective = config.get("HyperParameterTuningJobObjective") or definition.get(
            "TuningObjective"
        )
        if objective is None:
            raise InvalidTuningJob("HyperParameterTuningJobObjective must be specified.")
        criteria = config.get("TuningJobCompletionCriteria") or {}
        if (criteria.get("ConvergenceDetected") or {}).get("CompleteOnConvergence") == "Enabled":
            raise InvalidTuningJob(
                "CompleteOnConvergence is not supported by mlmarket: use "
                "TargetObjectiveMetricValue or BestObjectiveNotImproving."
            )
        dimensions = tuning.search_space(
            config.get("ParameterRanges") or definition.get("HyperParameterRanges") or {},
            strategy,
        )
        static = dict(definition.get("StaticHyperParameters") or {})
        static.pop(tuning.OBJECTIVE_HYPERPARAMETER, None)  # a Describe's, given back
        tuning.check_hyperparameters(dimensions, static)
        parents = self._parents(ctx, p, objective)
        self._check_limits(ctx, config, strategy, parents)

        algorithm = definition["AlgorithmSpecification"]
        if algorithm.get("AlgorithmName"):
            declared, algorithm_arn, _ = self.training.algorithm(ctx, algorithm["AlgorithmName"])
            tuning.check_algorithm(declared, algorithm_arn, dimensions, objective)
        else:
            tuning.check_objective_metric(objective, algorithm.get("MetricDefinitions") or [])
        # the definition as a training job, with each tuned value at one end of its range
        static[tuning.OBJECTIVE_HYPERPARAMETER] = objective["MetricName"]
        sample = {d.name: _sample(d) for d in dimensions}
        definition = {**definition, "StaticHyperParameters": static}
        request = tuning.training_request(
            definition, f"{p['HyperParameterTuningJobName']}-000", sample
        )
        self.training.prepare(ctx, TrainingJobSpec(**request))  # type: ignore[typeddict-item]

        spec = TuningJobSpec(**p)
        spec["TrainingJobDefinition"] = definition
        spec["HyperParameterTuningJobConfig"] = {
            **config,
            "HyperParameterTuningJobObjective": objective,
        }
        return spec

    def _check_limits(
        self,
        ctx: RequestContext,
        config: shapes.HyperParameterTuningJobConfig,
        strategy: str,
        parents: list[TuningJob],
    ) -> None:
        limits = config["ResourceLimits"]
        most = limits.get("MaxNumberOfTrainingJobs")
        if most is None and strategy != "Grid":
            raise InvalidTuningJob(
                f"ResourceLimits.MaxNumberOfTrainingJobs must be specified for the {strategy} "
                "strategy."
            )
        cap = tuning.MAX_TRAINING_JOBS_RANDOM if strategy == "Random" else tuning.MAX_TRAINING_JOBS
        inherited = sum(len(j.state.get("Trials") or []) for j in parents)
        if most is not None and most + inherited > cap:
            raise InvalidTuningJob(
                f"A {strategy} tuning job launches at most {cap} training jobs, its parents' "
                f"included: MaxNumberOfTrainingJobs is {most}"
                + (f" and its parents launched {inherited}." if inherited else ".")
            )
        self.quotas.check_value(
            ctx, quota.TUNING_PARALLEL, int(limits["MaxParallelTrainingJobs"]), "Jobs"
        )

    def _parents(
        self,
        ctx: RequestContext,
        p: TuningJobSpec,
        objective: shapes.HyperParameterTuningJobObjective,
    ) -> list[TuningJob]:
        """The tuning jobs a warm start starts from: finished, towards the same objective, and
        for IdenticalDataAndAlgorithm on the same data with the same algorithm."""
        warm = p.get("WarmStartConfig")
        if not warm:
            return []
        found = []
        definition = p["TrainingJobDefinition"]
        for name, parent in parents(self.store, ctx.account_id, ctx.region, warm):
            if parent is None:
                raise InvalidTuningJob(f"The parent tuning job {name} does not exist.")
            status = parent.state.get("HyperParameterTuningJobStatus")
            if status not in FINAL:
                raise InvalidTuningJob(
                    f"The parent tuning job {name} is {status}: a warm start needs parent jobs "
                    "that are Completed, Stopped or Failed."
                )
            theirs = parent.spec["HyperParameterTuningJobConfig"][
                "HyperParameterTuningJobObjective"
            ]
            if theirs != objective:
                raise InvalidTuningJob(
                    f"The objective of the parent tuning job {name} ({theirs['MetricName']}, "
                    f"{theirs['Type']}) differs from this job's ({objective['MetricName']}, "
                    f"{objective['Type']})."
                )
            if warm["WarmStartType"] == "IdenticalDataAndAlgorithm":
                before = parent.spec["TrainingJobDefinition"]
                if _algorithm_of(before) != _algorithm_of(definition) or _data_of(
                    before
                ) != _data_of(definition):
                    raise InvalidTuningJob(
                        f"IdenticalDataAndAlgorithm: the parent tuning job {name} trained with "
                        "a different algorithm or different input data; use TransferLearning."
                    )
            found.append(parent)
        return found

    @operation("DescribeHyperParameterTuningJob")
    def describe_hyper_parameter_tuning_job(
        self, ctx: RequestContext, p: dict[str, Any]
    ) -> dict[str, Any]:
        job = self.jobs.get(ctx, p["HyperParameterTuningJobName"])
        out = {k: v for k, v in specs.public(job.spec).items() if k != "Tags"}
        state = job.state
        summaries = self._summaries(job)
        jobs, objectives = tuning.counters(o for _, o in summaries)
        out.update(
            HyperParameterTuningJobArn=job.arn,
            HyperParameterTuningJobStatus=state["HyperParameterTuningJobStatus"],
            CreationTime=job.created,
            LastModifiedTime=job.modified,
            TrainingJobStatusCounters=jobs,
            ObjectiveStatusCounters=objectives,
        )
        for key in (
            "HyperParameterTuningEndTime",
            "FailureReason",
            "TuningJobCompletionDetails",
            "ConsumedResources",
        ):
            if key in state:
                out[key] = state[key]
        minimize = _minimize(job)
        best = _best([s for s, _ in summaries], minimize)
        if best is not None:
            out["BestTrainingJob"] = best
        if job.spec.get("WarmStartConfig"):
            everyone = [s for s, _ in summaries]
            for _, parent in parents(
                self.store, job.account_id, job.region, job.spec.get("WarmStartConfig")
            ):
                if parent is not None:
                    everyone.extend(s for s, _ in self._summaries(parent))
            overall = _best(everyone, minimize)
            if overall is not None:
                out["OverallBestTrainingJob"] = overall
        return out

    @operation("ListHyperParameterTuningJobs")
    def list_hyper_parameter_tuning_jobs(
        self, ctx: RequestContext, p: dict[str, Any]
    ) -> dict[str, Any]:
        items, token = list_resources(
            self.store, ctx, kinds.TUNING_JOB, {**p, "SortBy": p.get("SortBy") or "Name"}
        )
        summaries = []
        for job in items:
            jobs, objectives = tuning.counters(o for _, o in self._summaries(job))
            config = job.spec["HyperParameterTuningJobConfig"]
            summary = {
                "HyperParameterTuningJobName": job.spec["HyperParameterTuningJobName"],
                "HyperParameterTuningJobArn": job.arn,
                "HyperParameterTuningJobStatus": job.state["HyperParameterTuningJobStatus"],
                "Strategy": config["Strategy"],
                "CreationTime": job.created,
                "LastModifiedTime": job.modified,
                "TrainingJobStatusCounters": jobs,
                "ObjectiveStatusCounters": objectives,
                "ResourceLimits": config["ResourceLimits"],
            }
            if "HyperParameterTuningEndTime" in job.state:
                summary["HyperParameterTuningEndTime"] = job.state["HyperParameterTuningEndTime"]
            summaries.append(summary)
        return {"HyperParameterTuningJobSummaries": summaries, "NextToken": token}

    @operation("StopHyperParameterTuningJob")
    def stop_hyper_parameter_tuning_job(
        self, ctx: RequestContext, p: dict[str, Any]
    ) -> dict[str, Any]:
        self.jobs.stop(ctx, p["HyperParameterTuningJobName"], self.controller.stop_job)
        return {}

    @operation("ListTrainingJobsForHyperParameterTuningJob")
    def list_training_jobs_for_hyper_parameter_tuning_job(
        self, ctx: RequestContext, p: dict[str, Any]
    ) -> dict[str, Any]:
        job = self.jobs.get(ctx, p["HyperParameterTuningJobName"])
        summaries = [s for s, _ in self._summaries(job)]
        if p.get("StatusEquals"):
            summaries = [s for s in summaries if s["TrainingJobStatus"] == p["StatusEquals"]]
        sort_by = p.get("SortBy") or "Name"
        if sort_by == "FinalObjectiveMetricValue":
            summaries = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]

        def key(s: shapes.HyperParameterTrainingJobSummary) -> list[Any]:
            name = s["TrainingJobName"]
            if sort_by == "CreationTime":
                return [s["CreationTime"], name]
            if sort_by == "Status":
                return [s["TrainingJobStatus"], name]
            if sort_by == "FinalObjectiveMetricValue":
                return [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"], name]
            return [name]

        try:
            chunk, token = pagination.page_of(
                summaries,
                p,
                sort_key=key,
                descending=p.get("SortOrder") == "Descending",
                default_max=10,
            )
        except pagination.InvalidToken as exc:
            raise validation_exception(str(exc)) from None
        return {"TrainingJobSummaries": chunk, "NextToken": token}

    # -- the training jobs of a tuning job --

    def _summaries(
        self, job: TuningJob
    ) -> list[tuple[shapes.HyperParameterTrainingJobSummary, tuning.Outcome]]:
        objective = job.spec["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
        out = []
        for trial in job.state.get("Trials") or []:
            training = self.store.get(
                job.account_id, job.region, kinds.TRAINING_JOB, trial["TrainingJobName"].lower()
            )
            found = outcome(training, objective["MetricName"])
            if training is None or found is None:
                continue
            out.append((_summary(job, trial, training, found, objective), found))
        return out


def _summary(
    job: TuningJob,
    trial: Trial,
    training: Resource[TrainingJobSpec, Any],
    found: tuning.Outcome,
    objective: shapes.HyperParameterTuningJobObjective,
) -> shapes.HyperParameterTrainingJobSummary:
    state = training.state
    summary = shapes.HyperParameterTrainingJobSummary(
        TrainingJobName=training.spec["TrainingJobName"],
        TrainingJobArn=training.arn,
        TuningJobName=job.spec["HyperParameterTuningJobName"],
        CreationTime=training.created,
        TrainingJobStatus=state.get("TrainingJobStatus", "InProgress"),
        TunedHyperParameters=trial["TunedHyperParameters"],
    )
    for key in ("TrainingStartTime", "TrainingEndTime", "FailureReason"):
        if key in state:
            summary[key] = state[key]
    if "objective" in found:
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": objective["Type"],
            "MetricName": objective["MetricName"],
            "Value": found["objective"],
        }
        summary["ObjectiveStatus"] = "Succeeded"
    else:
        summary["ObjectiveStatus"] = (
            "Pending" if found["status"] in ("InProgress", "Stopping") else "Failed"
        )
    return summary


def _best(
    summaries: list[shapes.HyperParameterTrainingJobSummary], minimize: bool
) -> shapes.HyperParameterTrainingJobSummary | None:
    scored = {
        s["TrainingJobName"]: s
        for s in summaries
        if "FinalHyperParameterTuningJobObjectiveMetric" in s
    }
    chosen = tuning.best(
        ((n, s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]) for n, s in scored.items()),
        minimize,
    )
    return None if chosen is None else scored[chosen]


def _minimize(job: TuningJob) -> bool:
    objective = job.spec["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    return objective["Type"] == "Minimize"


def _sample(d: Dimension) -> str:
    if d.kind == "Categorical":
        return d.values[0]
    return str(int(d.low)) if d.kind == "Integer" else repr(d.low)


def _algorithm_of(d: shapes.HyperParameterTrainingJobDefinition) -> tuple[str, str]:
    spec = d["AlgorithmSpecification"]
    return spec.get("TrainingImage", ""), spec.get("AlgorithmName", "")


def _data_of(d: shapes.HyperParameterTrainingJobDefinition) -> list[tuple[str, str]]:
    return sorted(
        (c["ChannelName"], c["DataSource"].get("S3DataSource", {}).get("S3Uri", ""))
        for c in d.get("InputDataConfig") or []
    )
