from annotation.roles import is_annotator, is_researcher, is_reviewer


def roles(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"is_researcher": False, "is_annotator": False, "is_reviewer": False}
    return {"is_researcher": is_researcher(user), "is_annotator": is_annotator(user), "is_reviewer": is_reviewer(user)}
