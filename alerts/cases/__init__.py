"""Cases (案卷): the closed loop from a report to its closing, as pure domain rules."""
