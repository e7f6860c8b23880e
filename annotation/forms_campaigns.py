from django import forms

from annotation.guidelines import default_guidelines
from annotation.models import CampaignTask
from annotation.selectors.campaigns import annotator_choices, dataset_splits


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200, widget=forms.TextInput(attrs={"placeholder": "e.g. Dev set, round 1"}))
    dataset_split = forms.ChoiceField(label="Dataset and split")
    task = forms.ChoiceField(
        choices=CampaignTask.choices,
        initial=CampaignTask.BOTH,
        widget=forms.RadioSelect,
        help_text="Fine-grained feedback is given on each example's response 1; comparisons rank its four responses.",
    )
    annotators_per_item = forms.IntegerField(
        min_value=1, max_value=20, initial=1, label="Annotators per item", help_text="How many people annotate each item."
    )
    shared_percent = forms.IntegerField(
        min_value=0, max_value=100, initial=0, required=False, label="Annotated by everyone (%)",
        help_text="Share of the items that every annotator of the campaign does, to measure agreement; the rest get the number above.",
    )
    guidelines = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 10}), label="Guidelines (Markdown)",
        help_text="Shown beside every annotation page. Leave the default or write your own; HTML is shown as text.",
    )
    annotators = forms.ModelMultipleChoiceField(queryset=None, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.splits = {f"{dataset_id}:{split}": (dataset_id, split) for dataset_id, _name, split, _n in dataset_splits()}
        self.fields["dataset_split"].choices = [
            (f"{dataset_id}:{split}", f"{name} / {split} ({n} examples)") for dataset_id, name, split, n in dataset_splits()
        ]
        self.fields["annotators"].queryset = annotator_choices()
        self.fields["guidelines"].initial = default_guidelines()

    def clean_dataset_split(self) -> tuple[int, str]:
        return self.splits[self.cleaned_data["dataset_split"]]

    def clean_shared_percent(self) -> int:
        return self.cleaned_data["shared_percent"] or 0


class TeamSettingsForm(forms.Form):
    """The team settings of an existing campaign (campaign page)."""

    annotators_per_item = forms.IntegerField(min_value=1, max_value=20, label="Annotators per item")
    shared_percent = forms.IntegerField(min_value=0, max_value=100, label="Annotated by everyone (%)")
    guidelines = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 10}), label="Guidelines (Markdown)")
