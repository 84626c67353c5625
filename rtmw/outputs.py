"""A model's outputs by name: what every runtime adapter and the torch reference return.

Positions change between model families (a pose model gives simcc_x, simcc_y[, simcc_z];
a detector gives class scores and box distances per level), so nothing downstream reads
an output by position: decoding, verification and the bench ask for names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from rtmw.errors import InputError

# the names of RTMW's SimCC outputs, as the exported graphs and the manifest call them
SIMCC_X, SIMCC_Y, SIMCC_Z = "simcc_x", "simcc_y", "simcc_z"
POSE_OUTPUTS_2D = (SIMCC_X, SIMCC_Y)
POSE_OUTPUTS_3D = (SIMCC_X, SIMCC_Y, SIMCC_Z)


class ModelOutputs(Mapping[str, np.ndarray]):
    """Output name → float32 array, in the order the model gives them (read-only).

    ``outputs["simcc_x"]`` reads one; ``outputs.unpack("simcc_x", "simcc_y")`` gives a
    tuple for code that wants positional values (no names: all of them, in order).
    Iterating yields names, as any mapping does, so ``x, y = outputs`` is a mistake
    that mypy reports; use :meth:`unpack`.
    """

    __slots__ = ("_arrays",)

    def __init__(self, items: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]]):
        pairs = items.items() if isinstance(items, Mapping) else items
        arrays: dict[str, np.ndarray] = {}
        for name, array in pairs:
            if name in arrays:
                raise InputError(f"output {name!r} given twice")
            arrays[str(name)] = np.asarray(array, dtype=np.float32)
        self._arrays = arrays

    @classmethod
    def from_sequence(cls, names: Sequence[str], arrays: Sequence[np.ndarray]) -> ModelOutputs:
        """Name positional outputs (a backend's list) with the manifest's names."""
        if len(names) != len(arrays):
            raise InputError(
                f"the model gave {len(arrays)} outputs, its manifest names {len(names)} "
                f"({', '.join(names)})"
            )
        return cls(zip(names, arrays, strict=True))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._arrays)

    def unpack(self, *names: str) -> tuple[np.ndarray, ...]:
        """The arrays of ``names`` (all, in order, when none is given) as a tuple."""
        wanted = names or self.names
        missing = [name for name in wanted if name not in self._arrays]
        if missing:
            raise InputError(
                f"the model has no output {', '.join(map(repr, missing))}; it gives "
                + ", ".join(self.names)
            )
        return tuple(self._arrays[name] for name in wanted)

    def map(self, function: Callable[[np.ndarray], np.ndarray]) -> ModelOutputs:
        """The same names with ``function`` applied to every array (slicing, copying)."""
        return ModelOutputs((name, function(array)) for name, array in self._arrays.items())

    @classmethod
    def concatenate(cls, parts: Sequence[ModelOutputs]) -> ModelOutputs:
        """Join per-name the outputs of consecutive batches (all must name the same)."""
        if not parts:
            raise InputError("nothing to concatenate")
        names = parts[0].names
        for part in parts[1:]:
            if part.names != names:
                raise InputError(f"outputs {part.names} differ from {names} between batches")
        return cls((name, np.concatenate([p[name] for p in parts])) for name in names)

    @property
    def batch(self) -> int:
        """Results in the batch (the first axis, equal on every output)."""
        sizes = {len(array) for array in self._arrays.values()}
        if len(sizes) != 1:
            raise InputError(f"outputs disagree on the batch size: {sorted(sizes)}")
        return sizes.pop()

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._arrays[name]
        except KeyError:
            raise InputError(
                f"the model has no output {name!r}; it gives {', '.join(self.names)}"
            ) from None

    def get(self, name: str, default: np.ndarray | None = None) -> np.ndarray | None:  # type: ignore[override]
        return self._arrays.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._arrays

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}={tuple(a.shape)}" for n, a in self._arrays.items())
        return f"ModelOutputs({shapes})"


def as_outputs(
    value: ModelOutputs | Mapping[str, np.ndarray] | Sequence[np.ndarray],
    names: Sequence[str] = POSE_OUTPUTS_3D,
) -> ModelOutputs:
    """Accept what an inference callable returned: named outputs as they are, and a bare
    tuple (a user's own callable) named in the pose order (simcc_x, simcc_y[, simcc_z])."""
    if isinstance(value, ModelOutputs):
        return value
    if isinstance(value, Mapping):
        return ModelOutputs(value)
    arrays = list(value)
    if len(arrays) > len(names):
        raise InputError(f"inference returned {len(arrays)} outputs; expected at most "
                         f"{len(names)} ({', '.join(names)})")  # fmt: skip
    return ModelOutputs.from_sequence(names[: len(arrays)], arrays)
