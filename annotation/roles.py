"""Role names and checks. Roles are Django groups; staff count as researchers, researchers as reviewers.

A request asks about roles several times (the view's decorator, the page's
navigation); the user's group names are read once and kept on the user
object, which lives as long as the request.
"""

ANNOTATOR = "annotator"
RESEARCHER = "researcher"
# Reviews and adjudicates the annotators' work (researchers can too) without the rest of the researcher pages.
REVIEWER = "reviewer"


def _group_names(user) -> frozenset[str]:
    names = getattr(user, "_granary_group_names", None)
    if names is None:
        names = frozenset(user.groups.values_list("name", flat=True))
        user._granary_group_names = names
    return names


def is_researcher(user) -> bool:
    if not user.is_authenticated:
        return False
    return user.is_staff or RESEARCHER in _group_names(user)


def is_annotator(user) -> bool:
    if not user.is_authenticated:
        return False
    return ANNOTATOR in _group_names(user)


def is_reviewer(user) -> bool:
    if not user.is_authenticated:
        return False
    return is_researcher(user) or REVIEWER in _group_names(user)
