"""The composition root and the ways in: the Lambda handler and the sfb command line."""
