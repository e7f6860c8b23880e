from django import forms

from annotation.models import CampaignOrder
from annotation.qa.suggestions import FACTUALITY, RELEVANCE
from annotation.selectors.suggestions import ROLE_NAMES, suggester_run_choices


class RunChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, run) -> str:
        name = run.name or f"{run.get_kind_display()} run"
        return f"#{run.pk} {name}" + (f" · finished {run.finished_at:%Y-%m-%d %H:%M}" if run.finished_at else "")


class SuggestSettingsForm(forms.Form):
    """A campaign's model in the loop: which finished reward-model runs suggest, the control share, the queue order."""

    relevance = RunChoiceField(queryset=None, required=False, label=ROLE_NAMES[RELEVANCE],
                               empty_label="None", help_text="Outlines sub-sentences it judges irrelevant, repetitive or incoherent.")
    factuality = RunChoiceField(queryset=None, required=False, label=ROLE_NAMES[FACTUALITY],
                                empty_label="None", help_text="Outlines sentences it judges unverifiable or inconsistent.")
    preference = RunChoiceField(queryset=None, required=False, label=ROLE_NAMES["preference"],
                                empty_label="None", help_text="Used by the “disagreement” and “uncertain” orders only.")
    no_suggestion_percent = forms.IntegerField(
        min_value=0, max_value=100, initial=20, label="Items without suggestions (%)",
        help_text="The bias check's control group: these items never show suggestions.",
    )
    order = forms.ChoiceField(choices=CampaignOrder.choices, label="Queue order")
    order_seed = forms.IntegerField(min_value=0, initial=0, label="Seed",
                                    help_text="Chooses the control group and the random order; the same seed gives the same choice.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for role in (RELEVANCE, FACTUALITY, "preference"):
            self.fields[role].queryset = suggester_run_choices(role)

    @classmethod
    def for_campaign(cls, campaign, data=None):
        initial = {
            RELEVANCE: campaign.suggest_relevance_run_id,
            FACTUALITY: campaign.suggest_factuality_run_id,
            "preference": campaign.suggest_preference_run_id,
            "no_suggestion_percent": round(100 * campaign.no_suggestion_share),
            "order": campaign.order,
            "order_seed": campaign.order_seed,
        }
        return cls(data, initial=initial)
