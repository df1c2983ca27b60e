"""The smoke tests' pieces: `client` (one GET on urllib3, within a check's wall-clock deadline), `checks`
(the checks and their verdicts), `report` (result lines and JUnit XML). smoke_test.py is the command line."""
