from functools import wraps

from django.core.exceptions import PermissionDenied

from annotation.roles import is_annotator, is_researcher, is_reviewer


def researcher_required(view):
    """403 for anyone who is not a researcher (or staff)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_researcher(request.user):
            raise PermissionDenied("This page is for researchers.")
        return view(request, *args, **kwargs)

    return wrapper


def annotator_required(view):
    """403 for anyone who is neither an annotator nor a researcher."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not (is_annotator(request.user) or is_researcher(request.user)):
            raise PermissionDenied("This page is for annotators.")
        return view(request, *args, **kwargs)

    return wrapper


def reviewer_required(view):
    """403 for anyone who is neither a reviewer nor a researcher."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_reviewer(request.user):
            raise PermissionDenied("This page is for reviewers.")
        return view(request, *args, **kwargs)

    return wrapper
