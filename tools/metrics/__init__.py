"""Quality metrics and the evaluation loops that training and evaluation share."""
