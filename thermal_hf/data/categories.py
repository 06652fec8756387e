"""The users' 14 action categories (ids 0..13), as in the real dataset's `annotations/class_mapping.json`.

Used as the synthetic generator's default so a model trained on synthetic data can be evaluated on real data.
Real datasets always take their categories from their own annotation files, never from here.
"""

DEFAULT_CATEGORY_NAMES: tuple[str, ...] = (
    "sitting",
    "standing",
    "walking",
    "lying down-lying with risk",
    "lying down-lying on the bed/couch",
    "leaning",
    "transition-normal transition",
    "transition-lying with risk transition",
    "transition-lying on the bed transition",
    "lower position-other",
    "lower position-kneeling",
    "lower position-bending",
    "lower position-crouching",
    "other",
)
