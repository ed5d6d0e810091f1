"""User-facing errors: the CLI prints their message and exits 2, with no traceback."""

from __future__ import annotations


class IQAError(Exception):
    """A mistake the user can fix (bad recipe, missing file, unavailable model)."""

    exit_code = 2

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take other constructor arguments; rebuild from the message, so the error
        # crosses process boundaries (device workers, Ray) intact.
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


def _rebuild(cls: type[IQAError], message: str, state: dict[str, object]) -> IQAError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class RecipeError(IQAError):
    """A recipe that does not validate; the message reads ``FILE: field.path: message``."""


class PluginNotFound(IQAError):
    """A recipe names a component no installed distribution provides."""


class ModelUnavailable(IQAError):
    """Weights could not be loaded (offline, wrong path, missing package).

    ``ModelUnavailable(model, reason)`` builds the standard message with a download hint;
    ``ModelUnavailable("message")`` uses a plugin's own message as it is.
    """

    def __init__(self, model: str, reason: str | None = None, hint: str = "") -> None:
        self.model: str | None = None
        if reason is None:
            super().__init__(model)
            return
        hint = hint or (
            "Download it where you have internet (e.g. `hf download "
            f"{model} --local-dir DIR`) and set the recipe's model parameter to DIR."
        )
        super().__init__(f"cannot load model {model!r}: {reason}. {hint}")
        self.model = model


class ImageError(IQAError):
    """An input file that is not a readable image; becomes an error row, not a crash."""
