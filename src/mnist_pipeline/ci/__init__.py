"""Layer 5, CI: reproduce on a runner, check the floors, report, and record what CI trained."""
