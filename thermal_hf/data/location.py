"""Where a dataset argument (``--dataset``, a recipe's ``dataset:``) points: a local folder or a Hub dataset repo.

A path that exists is used as it is. Otherwise an ``ORG/NAME`` that is a valid Hub repo id is a dataset pushed with
``thermal-hf push --dataset`` (or any converted / raw thermal dataset repo): it is downloaded once into the Hugging
Face cache with `huggingface_hub.snapshot_download` (offline, ``HF_HUB_OFFLINE=1``: taken from the cache) and its
snapshot folder is used. A local folder always wins over a repo of the same name, as in `datasets.load_dataset`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ThermalDataError


def is_hub_dataset_id(text: str | Path) -> bool:
    """``ORG/NAME`` that is a valid Hub repo id and no existing local path."""
    from thermal_hf.hub import _is_hub_id

    return isinstance(text, str) and _is_hub_id(text)


def resolve_dataset_location(dataset: str | Path, *, local_files_only: bool = False) -> Path:
    """The local folder of ``dataset``: the path itself, or the downloaded snapshot of a Hub dataset repo id.

    A path that neither exists nor reads as a repo id is returned as is (the caller says it is missing).
    ``local_files_only``: only look in the Hugging Face cache (raises `ThermalDataError` when it is not there).
    """
    path = Path(dataset).expanduser()
    if path.exists() or not is_hub_dataset_id(dataset):
        return path
    from huggingface_hub import snapshot_download

    from thermal_hf.hub import _scrub

    try:
        return Path(snapshot_download(str(dataset), repo_type="dataset", local_files_only=local_files_only))
    except Exception as err:  # not found, private, offline and not cached, network down: one clear line
        first = _scrub(str(err), None).splitlines()[0] if str(err) else ""
        where = "in the Hugging Face cache" if local_files_only else "on the Hub"
        raise ThermalDataError(
            f"dataset {dataset}: no such local folder, and the Hub dataset repo '{dataset}' is not available {where} "
            f"({type(err).__name__}: {first}). Give a raw or converted dataset folder, or a dataset repo id you can "
            "read (offline: one downloaded before, `hf download ORG/NAME --repo-type dataset`)"
        ) from None
