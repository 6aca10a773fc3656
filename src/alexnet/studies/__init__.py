"""What is done with runs: the paper's evaluation, the claims study, the learning-rate range test, and the
figures and projector they draw."""
