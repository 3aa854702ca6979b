"""movierec: shared configuration and infrastructure for the offline and online stages."""

__version__ = "0.1.0"
