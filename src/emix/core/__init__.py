"""Pure numerical core of emix: E-step, M-step and the EM loop.

Nothing here holds state: functions take arrays and frozen parameter objects
and return new ones.
"""
