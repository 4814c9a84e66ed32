"""Dispatch: the command centre (指挥中心). Sends each filed case to the department that
owns it with a handling deadline, and takes the departments' answers."""
