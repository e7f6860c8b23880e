from annotation.roles import is_annotator, is_researcher


def roles(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"is_researcher": False, "is_annotator": False}
    return {"is_researcher": is_researcher(user), "is_annotator": is_annotator(user)}
