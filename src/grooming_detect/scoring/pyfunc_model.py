"""The pyfunc model's code file (MLflow "models from code"): loading the logged model runs
this file instead of unpickling an object. The model itself is
`grooming_detect.scoring.pyfunc.GroomingRiskModel`."""

from mlflow.models import set_model

from grooming_detect.scoring.pyfunc import GroomingRiskModel

set_model(GroomingRiskModel())
