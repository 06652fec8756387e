"""Exceptions raised for bad user input (data folders, recipes, checkpoints)."""


class ThermalDataError(ValueError):
    """A data folder, recording or annotation file is not what thermal-hf expects.

    The message always names the file, the key or image id, and what was expected.
    """


class RecipeError(ValueError):
    """A recipe (YAML or command line) has an unknown key or a value of the wrong type."""


class CheckpointError(ValueError):
    """A checkpoint does not match the architecture it is being imported into."""


class TrainingDivergedError(RuntimeError):
    """Training produced a non-finite loss, gradient or weight; the model is not saved as a result."""
