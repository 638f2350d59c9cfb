import os
import random

import numpy as np
import pytest
import torch

# Tests run on 2 cores next to other work: one intra-op thread keeps timings and results stable.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_space():
    from hwnas.space import create

    return create("inas-tiny")


@pytest.fixture
def sod_space():
    from hwnas.space import create

    return create("inas-sod")


def pytest_report_header(config):
    return f"torch {torch.__version__}, threads={torch.get_num_threads()}, cpu_count={os.cpu_count()}"
