"""The pyfunc model's code file (MLflow "models from code"): loading the logged model runs
this file instead of unpickling an object. The model itself is
`models.serving.GroomingRiskModel`."""

from mlflow.models import set_model

from grooming_detect.models.serving import GroomingRiskModel

set_model(GroomingRiskModel())
