"""Role names and checks. Roles are Django groups; staff count as researchers."""

ANNOTATOR = "annotator"
RESEARCHER = "researcher"


def is_researcher(user) -> bool:
    if not user.is_authenticated:
        return False
    return user.is_staff or user.groups.filter(name=RESEARCHER).exists()


def is_annotator(user) -> bool:
    if not user.is_authenticated:
        return False
    return user.groups.filter(name=ANNOTATOR).exists()
