"""Small conveniences shared by the notebooks: the settings banner, budgets, structure views."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from course_lib.config import CourseConfig, load_config

#: A MACE model with more parameters than this gets fast mode's large-model budgets.
#: course-mini has 245 k parameters (64 channels, l <= 1, r_max 5 Å); MACE-MP-0 small 3.85 M,
#: medium 4.69 M. MACE-MP-0 small (89 elements, 128 channels, l <= 3, r_max 6 Å, ~85
#: neighbours per atom in Li2O) costs far more per evaluated or gradient-trained 12-atom
#: structure, and a closed-form readout fit needs one backward pass per readout weight (144
#: against course-mini's 80), so fast mode's counts of structures, epochs, seeds and members
#: shrink for it.
LARGE_MODEL_PARAMETERS = 1_000_000


class MaceRequiredError(RuntimeError):
    """A notebook step trains a MACE model, and the configured model is not one."""


@dataclass(frozen=True)
class NotebookSettings:
    """What a notebook runs with; printed at its top so every number has a source."""

    mode: str
    model: str
    model_requested: str
    seed: int
    config: CourseConfig

    @property
    def fast(self) -> bool:
        return self.mode == "fast"

    def dataset(self, role: str) -> str:
        return self.config.datasets[role]

    @property
    def training_corpus(self) -> str:
        """The model's own bundled pre-training corpus (``mini-mptrj,mini-omat`` for the twin),
        else the configured ``corpus``: a stand-in for a corpus the course does not bundle (MPtrj)."""
        from course_lib.models import pretraining_corpus

        return pretraining_corpus(self.model) or self.dataset("corpus")

    @cached_property
    def model_parameters(self) -> int | None:
        """Number of parameters of the model (None: not a MACE model).

        Read from the model file through the registry, which checks its sha256 first.
        """
        from course_lib.flowchart import fine_tunable
        from course_lib.models import load_mace_model

        if not fine_tunable(self.model):
            return None
        return sum(p.numel() for p in load_mace_model(self.model, device="cpu").parameters())

    @property
    def large_model(self) -> bool:
        """Whether the model is a large MACE (MACE-MP-0), with more than ``LARGE_MODEL_PARAMETERS``."""
        return (self.model_parameters or 0) > LARGE_MODEL_PARAMETERS

    def budget(self, *, fast, full, large_model=None):
        """The value of a budget (structures, epochs, seeds, ...) for this mode and model.

        ``full`` in full mode; in fast mode ``large_model`` for a large model
        (when given), else ``fast``. Notebooks write the values out where they set a
        budget, so that the knob stays visible.
        """
        if not self.fast:
            return full
        if large_model is not None and self.large_model:
            return large_model
        return fast

    def require_mace(self, purpose: str) -> None:
        """Raise ``MaceRequiredError`` saying what to change unless the model is a MACE model.

        ``purpose`` names what needs it, e.g. "fine-tuning and committees".
        """
        from course_lib.flowchart import fine_tunable

        if not fine_tunable(self.model):
            raise MaceRequiredError(
                f"{purpose} train the readouts of a MACE model, and this notebook runs with "
                f'{self.model!r}, which is not one. Set model = "course-mini" (bundled, works '
                "offline) or a MACE-MP-0 model in course.toml, or the environment variable "
                "COURSE_MODEL, and restart the kernel."
            )

    def __str__(self) -> str:
        via = "" if self.model == self.model_requested else f" (from '{self.model_requested}')"
        return (
            f"mode: {self.mode}  |  model: {self.model}{via}  |  seed: {self.seed}"
            f"  |  config: {self.config.source}"
        )

    def budget_note(self) -> str:
        """One line saying which budgets apply, for the notebooks that shrink them."""
        if not self.fast:
            return "budgets: full mode"
        if self.large_model:
            return (
                f"budgets: fast mode, large model ({self.model_parameters / 1e6:.2f} M parameters): "
                "fewer structures, epochs, seeds and members than with course-mini"
            )
        return "budgets: fast mode"


def notebook_settings(**overrides) -> NotebookSettings:
    """Read ``course.toml`` (and ``COURSE_MODE``/``COURSE_MODEL``) and resolve the model."""
    from course_lib.models import resolve_model_name

    config = load_config()
    requested = overrides.get("model", config.model)
    return NotebookSettings(
        mode=overrides.get("mode", config.mode),
        model=resolve_model_name(requested),
        model_requested=requested,
        seed=overrides.get("seed", config.seed),
        config=config,
    )


def show_structure(atoms, *, supercell=(1, 1, 1)):
    """An interactive 3D view (nglview) of a structure, with its unit cell."""
    import nglview

    return _styled(nglview.show_ase(atoms.repeat(supercell)))


def show_trajectory(frames, *, supercell=(1, 1, 1)):
    """An nglview player of MD frames (e.g. ``MDResult.frames``), with the unit cell.

    Atoms are drawn where the MD put them (not wrapped back into the cell), so a
    diffusing ion is seen leaving it.
    """
    import nglview

    if not frames:
        raise ValueError("no frames to show: the MD result holds no sampled frames")
    return _styled(nglview.show_asetraj([atoms.repeat(supercell) for atoms in frames]))


def _styled(view):
    view.add_unitcell()
    view.add_ball_and_stick()
    return view
