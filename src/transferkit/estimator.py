"""``TransferClassifier``: the sklearn-like face of transferkit (what the CLI uses too)."""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.errors import BadInputError, NotFittedError
from transferkit.events import Events
from transferkit.progress import as_events


def _as_dataset(data, *, labelled: bool, strict: bool, modality: str = "image", **options):
    """Accept a Dataset, a path to a dataset, or (unlabelled) a list of inputs of ``modality``:
    files, folders, ``(name, bytes)`` pairs, and for a text model the texts themselves."""
    from transferkit.data import Dataset
    from transferkit.modalities import get_modality, load_dataset

    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, Path)):
        if labelled:
            return load_dataset(data, strict=strict, **options)
        data = [data]
    if isinstance(data, (list, tuple)) and not labelled:
        return get_modality(modality).load_inputs(list(data), **options)
    raise BadInputError(
        f"expected a transferkit Dataset or a path to a dataset folder; got {type(data).__name__}"
    )


def load_unlabelled(data, *, modality: str, strict: bool = False, **options):
    """Unlabelled inputs of ``modality`` (a Dataset, a path, or a list of inputs) as a Dataset,
    e.g. a target domain's; unreadable files are left out with one warning. A path that holds
    inputs of another kind is refused, naming both kinds."""
    from transferkit.modalities import get_modality

    if isinstance(data, (str, Path)):
        found = _kind_of(Path(data))
        if found is not None and found.name != modality:
            raise BadInputError(
                f"{data} holds {found.noun}s but the training data holds "
                f"{get_modality(modality).noun}s; pass inputs of the same kind (the domain "
                "may differ, the kind of input may not)"
            )
    return _as_dataset(data, labelled=False, strict=strict, modality=modality, **options)


def _kind_of(path: Path):
    """The modality whose files ``path`` holds (the most of its first files a modality claims),
    or None when no modality claims any of them."""
    from itertools import islice

    from transferkit.modalities import MODALITIES

    if path.is_file():
        # a table says what it holds (texts, or paths of clips) by its columns
        *claimants, _ = MODALITIES.values()
        found = next((m for m in claimants if m.detect(path)), None)
        if found is not None:
            return found
    # the first files found, not sorted: a folder of a million inputs is not listed whole here
    files = [path] if path.is_file() else list(islice(path.rglob("*"), 200))
    counts: dict[str, int] = {}
    for f in files:
        if f.is_file():
            for m in MODALITIES.values():
                if m.claims(str(f)):
                    counts[m.name] = counts.get(m.name, 0) + 1
                    break
    if not counts:
        return None
    return MODALITIES[max(counts, key=counts.get)]


def _inputs_left_out(data, ds) -> bool:
    """Whether ``ds`` was read here from inputs and some were unreadable (left out)."""
    return isinstance(data, (str, Path, list, tuple)) and bool(ds.skipped)


def _row_per_input(inputs, ds, *arrays: np.ndarray) -> tuple[list[np.ndarray], Any]:
    """``arrays`` (rows of ``ds``) with a row for every input, in the order given, and the
    Dataset of every input: inputs left out at load as unreadable get NaN (or False) rows, so
    results stay aligned with what the caller passed."""
    from dataclasses import replace

    from transferkit.modalities import get_modality

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    every = get_modality(ds.modality).list_inputs(list(inputs))
    rows = np.full(len(every), -1)
    j = 0
    for i, sample in enumerate(every):  # ds keeps the readable inputs in this same order
        if j < len(ds) and ds.samples[j] == sample:
            rows[i], j = j, j + 1
    read = rows >= 0
    out = []
    for values in arrays:
        fill = False if values.dtype == bool else np.nan
        full = np.full((len(every), *values.shape[1:]), fill, dtype=values.dtype)
        full[read] = values[rows[read]]
        out.append(full)
    return out, replace(ds, samples=tuple(every))


# what of a strategy's fit info the manifest keeps: how it trained, not run-time detail
_MANIFEST_FIT_INFO = (
    "views",
    "training",
    "config_used",
    "layer_groups",
    "unfrozen_groups",
    "batch_size",
    "device",
    "n_val",
)


class TransferClassifier:
    """A pretrained backbone + a transfer strategy + a new head, fitted on a small dataset.

    Example::

        from transferkit import TransferClassifier, load_dataset
        train, val, test = load_dataset("photos/").split(seed=0)
        clf = TransferClassifier(backbone="mobilenet_v2").fit(train)
        print(clf.evaluate(test)["accuracy"])
        clf.save("model/")

    ``backbone=None`` takes the default for the data's modality (``mobilenet_v2`` for images,
    ``all_minilm_l6_v2`` for text); ``strategy="auto"`` chooses from the data and the backbone
    (``features`` for images, ``contrastive`` for text with a trainable encoder) and records
    why in ``describe()["strategy_reason"]``. ``progress``: True shows progress bars on a
    terminal and one line per encoding pass or epoch otherwise, False nothing; an ``Events``
    sink (``transferkit.events``) gets every training event instead.
    """

    def __init__(
        self,
        *,
        backbone: str | None = None,
        strategy: str = "auto",
        strategy_params: dict[str, Any] | None = None,
        head: str | None = None,
        head_params: dict[str, Any] | None = None,
        weights: str | Path | None = None,
        batch_size: int = 64,
        cache: bool = True,
        progress: bool | Events = True,
        strict: bool = False,
        runtime: str = "auto",
        seed: int = 0,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        threads: int | None = None,
    ):
        self.backbone = backbone
        self.strategy = strategy
        self.strategy_params = strategy_params
        self.head = head
        self.head_params = head_params
        self.weights = weights
        self.batch_size = batch_size
        self.cache = cache
        self.progress = progress
        self.strict = strict
        self.runtime = runtime
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        # threads of a frozen backbone's forward pass (None: every core); a server running
        # several batches at once gives each one thread
        self.threads = threads

    # -- parameters, as sklearn's BaseEstimator has them (without importing sklearn) --------
    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The parameters: the keyword arguments of ``__init__``, sorted."""
        return sorted(p for p in inspect.signature(cls.__init__).parameters if p != "self")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The parameters as given to ``__init__`` or ``set_params`` (``sklearn.base.clone``
        rebuilds an unfitted copy from them). ``deep`` is sklearn's: no parameter here is
        itself an estimator, so both give the same."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> TransferClassifier:
        """Set parameters by name, unchecked until ``fit`` (as sklearn does). Returns self."""
        valid = self._get_param_names()
        for name in params:
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {self!r}. "
                    f"Valid parameters are: {valid!r}."
                )
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        # the parameters that differ from their defaults, as sklearn prints an estimator
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if value is not defaults[name].default and value != defaults[name].default
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    # -- fitting ----------------------------------------------------------------------------
    def fit(
        self, data, val=None, *, target=None, source=None, sample_weight=None
    ) -> TransferClassifier:
        """Fit on a labelled Dataset (or a path to one). Returns self.

        ``val``: held-out data for strategies that watch it while training (``finetune``,
        ``scratch``: early stopping); they split one off ``data`` when it is not given.
        ``target``: unlabelled inputs of the domain the model will see (a Dataset, a path or a
        list of inputs), for strategies that adapt to it (``coral``); ``source``: labelled
        data of another domain; ``sample_weight``: one weight per sample of ``data``. A
        strategy that does not use one of them refuses it.
        """
        from transferkit.auto_choice import choose
        from transferkit.backbones import get_spec, resolve_backbone
        from transferkit.heads import make_head
        from transferkit.modalities import get_modality
        from transferkit.strategies import FitContext, FitData, check_fit_data, make_strategy
        from transferkit.strategies.features import head_params_for

        if int(self.batch_size) < 1:
            raise BadInputError(f"batch_size must be at least 1; got {self.batch_size}")
        ds = _as_dataset(data, labelled=True, strict=self.strict)
        ds.check_trainable()
        val_ds = None if val is None else _as_dataset(val, labelled=True, strict=self.strict)
        if val_ds is not None:
            val_ds = val_ds.with_labels(ds.labels)
        fit_data = FitData(
            train=ds,
            val=val_ds,
            target=None
            if target is None
            else load_unlabelled(target, modality=ds.modality, strict=self.strict),
            source=None
            if source is None
            else _as_dataset(source, labelled=True, strict=self.strict),
            sample_weight=None if sample_weight is None else _sample_weight(sample_weight, ds),
        )
        self.choice_ = choose(
            ds,
            self.backbone,
            self.strategy,
            weights=self.weights,
            batch_size=int(self.batch_size),
            cache=self.cache,
            runtime=self.runtime,
            events=as_events(self.progress),
        )
        name = self.choice_.backbone
        check_fit_data(self.choice_.strategy, fit_data)
        strategy = make_strategy(self.choice_.strategy, **(self.strategy_params or {}))
        strategy.settle(fit_data, get_spec(name))
        head_name = self.head or strategy.default_head
        head_params = dict(self.head_params or {})
        if head_name == strategy.default_head and not head_params:
            head_params = dict(strategy.default_head_params)
        head = make_head(head_name, **head_params_for(get_spec(name), head_name, head_params))
        t0 = time.perf_counter()
        pretrained = strategy.capabilities.pretrained_weights
        # resolved and verified now, built only if some embedding is not cached yet
        self.backbone_ = resolve_backbone(
            name, weights=self.weights if pretrained else None, pretrained=pretrained
        )
        get_modality(ds.modality).check_backbone(self.backbone_, ds)
        load = 0.0
        if strategy.capabilities.trains_backbone:
            # building the encoder is not training: timed apart (as peers time only train())
            t_load = time.perf_counter()
            self.backbone_.materialize()
            head.load_libraries()
            load = time.perf_counter() - t_load
        self.labels_ = list(ds.labels)
        context = FitContext(
            embed=self._embed,
            head=head,
            seed=self.seed,
            checkpoint_dir=self.checkpoint_dir,
            resume=self.resume,
            events=as_events(self.progress),
        )
        result = strategy.fit(self.backbone_, fit_data, context)
        if result.backbone is not None:
            self.backbone_ = result.backbone
        self.head_ = result.head if result.head is not None else head
        self.strategy_ = strategy
        self.n_train_ = result.n_train
        self.fit_info_ = {k: v for k, v in result.info.items() if k != "problems"}
        self.strategy_metrics_ = strategy.metrics_block(result)
        self.skipped_ = list(result.info.get("problems", []))
        extract = float(result.info.get("seconds_extract", 0.0))
        train = time.perf_counter() - t0 - extract - load
        self.seconds_ = {**({"load": load} if load else {}), "extract": extract, "train": train}
        return self

    def _embed(self, ds, view: str = "identity", backbone=None):
        """Embeddings of ``ds`` by ``backbone`` (default: this model's), cached and batched."""
        from transferkit.data import report_unreadable
        from transferkit.modalities import extract_embeddings

        result = extract_embeddings(
            self.backbone_ if backbone is None else backbone,
            ds,
            batch_size=int(self.batch_size),
            cache=self.cache,
            events=as_events(self.progress),
            runtime=self.runtime,
            num_threads=self.threads,
            view=view,
        )
        if result.problems:
            report_unreadable(result.problems, strict=self.strict, context=str(ds.source))
        return result

    # -- prediction ------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise NotFittedError(
                "This TransferClassifier is not fitted yet: call fit(train) or "
                "TransferClassifier.load(model_dir) first."
            )

    def predict_details(
        self, data, **options: Any
    ) -> tuple[np.ndarray, np.ndarray, list[tuple[Path, str]], Any]:
        """(probabilities (N, C), NaN rows where unreadable; ok mask; problems; dataset).

        ``options`` go to the reader of inputs, e.g. ``text_col`` for text tables.
        """
        from transferkit.modalities import get_modality

        self._check_fitted()
        ds = _as_dataset(
            data,
            labelled=False,
            strict=self.strict,
            modality=self.backbone_.spec.modality,
            **options,
        )
        get_modality(ds.modality).check_backbone(self.backbone_, ds)
        result = self._embed(ds)
        proba = np.full((len(ds), len(self.labels_)), np.nan, dtype=np.float64)
        if result.ok.any():
            proba[result.ok] = self.head_.predict_proba(result.embeddings[result.ok])
        self.seconds_predict_ = result.seconds
        if _inputs_left_out(data, ds):
            (proba, ok), every = _row_per_input(data, ds, proba, result.ok)
            return proba, ok, [*ds.skipped, *result.problems], every
        return proba, result.ok, result.problems, ds

    def transform(self, data) -> np.ndarray:
        """Embeddings (N, D) the head sees, from this model's (possibly fine-tuned) encoder;
        NaN rows where an input could not be read."""
        self._check_fitted()
        ds = _as_dataset(
            data, labelled=False, strict=self.strict, modality=self.backbone_.spec.modality
        )
        result = self._embed(ds)
        out = np.full((len(ds), result.embeddings.shape[1]), np.nan, dtype=np.float32)
        out[result.ok] = result.embeddings[result.ok]
        if _inputs_left_out(data, ds):
            (out,), _ = _row_per_input(data, ds, out)
        return out

    def predict_proba(self, data) -> np.ndarray:
        """Class probabilities (N, C), columns ordered as ``labels_``; NaN rows = unreadable."""
        return self.predict_details(data)[0]

    def predict(self, data) -> list[str | None]:
        """Predicted label per input (None where the input could not be read)."""
        proba, ok, _, _ = self.predict_details(data)
        best = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=int)
        return [self.labels_[int(i)] if k else None for i, k in zip(best, ok)]

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, data) -> dict[str, Any]:
        """metrics.json-shaped dict for a labelled test set."""
        return self.evaluate_details(data)[0]

    def score(self, data) -> float:
        """Accuracy on a labelled dataset (sklearn's ``score``)."""
        return self.evaluate(data)["accuracy"]

    def evaluate_details(self, data) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(metrics, mistakes worst-first) on a labelled dataset whose labels the model knows."""
        from transferkit.metrics import classification_metrics
        from transferkit.modalities import get_modality

        self._check_fitted()
        ds = _as_dataset(data, labelled=True, strict=self.strict)
        unknown = sorted(set(ds.labels) - set(self.labels_))
        if unknown:
            counts = ds.class_counts()
            listed = ", ".join(f"'{u}' ({counts.get(u, 0)} files)" for u in unknown)
            raise BadInputError(
                f"the test set {ds.source} has classes the model was not trained on: {listed}. "
                f"The model knows: {', '.join(self.labels_)}. Remove or rename those folders, "
                "or re-train with them."
            )
        ds = ds.with_labels(self.labels_)
        proba, ok, problems, _ = self.predict_details(ds)
        y_true = ds.targets[ok]
        pred = proba[ok].argmax(axis=1)
        metrics = classification_metrics(y_true, pred, self.labels_)
        metrics.update(self.describe())
        metrics["seconds"] = {**getattr(self, "seconds_", {}), "predict": self.seconds_predict_}
        problems = [*ds.skipped, *problems]  # left out at load, then (rarely) at decoding
        if problems:
            metrics["skipped_files"] = [[str(p), r] for p, r in problems]
        conf = proba[ok].max(axis=1)
        samples = [s for s, k in zip(ds.samples, ok) if k]
        modality = get_modality(ds.modality)
        wrong = np.flatnonzero(pred != y_true)
        wrong = wrong[np.argsort(-conf[wrong])]  # confident mistakes are the instructive ones
        mistakes = [
            {
                "path": str(samples[i].path),
                "true": self.labels_[int(y_true[i])],
                "predicted": self.labels_[int(pred[i])],
                "confidence": float(conf[i]),
                "preview": modality.preview(samples[i]),  # the report's widget
            }
            for i in wrong
        ]
        return metrics, mistakes

    def describe(self) -> dict[str, Any]:
        """The model's identity, as recorded in metrics.json and the manifest."""
        from transferkit.backbones.licence import licence_record

        self._check_fitted()
        return {
            "backbone": self.backbone_.name,
            "strategy": self.strategy_.name,
            "head": self.head_.name,
            "n_train": int(self.n_train_),
            "weights_source": self.backbone_.weights_source,
            # the weights' licence: a model built on non-commercial weights inherits it
            "licence": licence_record(self.backbone_.spec),
            **(
                {"languages": list(self.backbone_.spec.languages)}
                if self.backbone_.spec.languages
                else {}
            ),
            # why --backbone auto / --strategy auto chose what they chose
            **(self.choice_.describe() if getattr(self, "choice_", None) else {}),
        }

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path, *, metrics: dict[str, Any] | None = None) -> Path:
        """Write the model bundle (manifest.json + safetensors) atomically."""
        from transferkit.bundle import save_bundle

        self._check_fitted()
        head_config, head_arrays = self.head_.get_state()
        bb = self.backbone_
        # what the strategy changed in the backbone: trained weights, an adapter, or nothing
        parts = self.strategy_.bundle_parts(bb, self.fit_info_)
        backbone_entries = parts.pop("backbone", {})
        summary = None
        if metrics:
            summary = {
                k: metrics[k] for k in ("accuracy", "macro_f1", "n_test", "n_train") if k in metrics
            }
        return save_bundle(
            path,
            backbone={
                "name": bb.name,
                "modality": bb.spec.modality,
                "weights_sha256": bb.weights_sha256,
                "weights_source": bb.weights_source,
                "embedding_dim": int(bb.num_features),
                "preprocess": bb.preprocess.to_dict(),
                **backbone_entries,
            },
            labels=self.labels_,
            strategy={
                **self.strategy_.describe(),
                "n_train": int(self.n_train_),
                **{k: v for k, v in self.fit_info_.items() if k in _MANIFEST_FIT_INFO},
            },
            head_config=head_config,
            head_arrays=head_arrays,
            metrics=summary,
            **parts,
        )

    @classmethod
    def load(
        cls, path: str | Path, *, weights: str | Path | None = None, **params: Any
    ) -> TransferClassifier:
        """Load a bundle; needs nothing but the bundle and the backbone's pretrained weights
        (those of the architecture only, when the bundle stores trained ones)."""
        from transferkit.backbones.text_preprocess import preprocess_from_dict
        from transferkit.bundle import load_bundle
        from transferkit.strategies import make_strategy

        bundle = load_bundle(path)
        mf = bundle.manifest
        bb_info = mf["backbone"]
        clf = cls(
            backbone=bb_info["name"],
            strategy=mf["strategy"]["name"],
            head=mf["head"]["name"],
            weights=weights,
            **params,
        )
        clf.strategy_ = make_strategy(mf["strategy"]["name"], **mf["strategy"].get("config", {}))
        backbone = clf.strategy_.restore(_bundle_backbone(bundle, weights), bundle)
        # the preprocessing the model was trained with wins over today's registry default
        backbone.preprocess = preprocess_from_dict(bb_info["preprocess"])
        clf.backbone_ = backbone
        clf.labels_ = bundle.labels
        clf.head_ = _head_from_bundle(bundle)
        clf.n_train_ = int(mf["strategy"].get("n_train", 0))
        clf.fit_info_ = _fit_info_from_bundle(bundle, backbone)
        clf.strategy_metrics_ = {}
        clf.seconds_ = {}
        return clf


def _fit_info_from_bundle(bundle, backbone) -> dict[str, Any]:
    """What a loaded model knows of the fit that made it, so that saving it again writes the
    bundle it was loaded from: how it trained (the manifest's strategy entries), which
    pretrained weights a trained backbone started from, and whether the backbone is still
    the pretrained one (a frozen strategy's, or one a guard kept: a bundle with neither
    backbone weights nor an adapter, whose restored backbone has the identity its manifest
    names, checked against the installed weights at load)."""
    mf = bundle.manifest
    info: dict[str, Any] = {k: mf["strategy"][k] for k in _MANIFEST_FIT_INFO if k in mf["strategy"]}
    if (
        bundle.backbone_file is None
        and "adapter" not in mf
        and backbone.weights_sha256 == mf["backbone"]["weights_sha256"]
    ):
        info["backbone_untouched"] = True
        info["pretrained_weights_sha256"] = backbone.weights_sha256
    elif mf["backbone"].get("pretrained_weights_sha256"):
        info["pretrained_weights_sha256"] = mf["backbone"]["pretrained_weights_sha256"]
    return info


def _bundle_backbone(bundle, weights):
    """The backbone a bundle was trained from, for its strategy to restore: the pretrained one
    (verified), or when the bundle stores trained weights, the architecture — built from the
    pretrained files where they are here, since a tokenizer, a feature extractor or a config
    lives next to them (every weight then comes from the bundle), else randomly initialised."""
    from transferkit.backbones import resolve_backbone

    name = bundle.manifest["backbone"]["name"]
    if bundle.backbone_file is None:
        return resolve_backbone(name, weights=weights)
    try:
        return resolve_backbone(name, weights=weights, allow_download=False)
    except Exception:  # noqa: BLE001 - any reason to lack them: the architecture alone will do
        return resolve_backbone(name, pretrained=False)


def _sample_weight(weights, ds) -> np.ndarray:
    """``weights`` as one finite, non-negative float per sample of ``ds``, or refused."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != len(ds):
        raise BadInputError(
            f"sample_weight has {len(w)} weights but {ds.source} has {len(ds)} samples; give "
            "one weight per sample, in the dataset's order"
        )
    if not np.isfinite(w).all() or (w < 0).any():
        raise BadInputError(
            "sample_weight must be finite and >= 0; got "
            f"{w[~(np.isfinite(w) & (w >= 0))][:3].tolist()}"
        )
    return w


def _head_from_bundle(bundle):
    """The bundle's fitted head; refused with the bundle's path when its arrays, its config and
    the labels disagree (the manifest's own checks compare the labels with the config)."""
    from transferkit.heads import head_class

    config = bundle.manifest["head"]
    try:
        return head_class(config["name"]).from_state(config, bundle.head_arrays)
    except BadInputError as exc:
        raise bundle.refuse(str(exc)) from None
