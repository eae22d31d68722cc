"""The names an option accepts, where checking it and the command's --help both read them: a module
with no imports, so that `nopipe --help` lists the choices without importing torch."""

DTYPE_CHOICES = ("auto", "float32", "float16", "bfloat16", "int8")
ACTIVATION_NAMES = ("softmax", "sigmoid", "none")  # text classification's function_to_apply
AGGREGATION_STRATEGIES = ("none", "simple", "first", "average", "max")  # token classification's
