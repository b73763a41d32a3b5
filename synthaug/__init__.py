"""synthaug: does synthetic data from a generative model make my classifier better, and by how much?"""

__version__ = "0.1.0"
