"""Small conveniences shared by the notebooks: the settings banner and structure views."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.config import CourseConfig, load_config


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

    view = nglview.show_ase(atoms.repeat(supercell))
    view.add_unitcell()
    view.add_ball_and_stick()
    return view
