from django.urls import path

from annotation import views_annotate, views_campaigns, views_datasets, views_rm_data

app_name = "annotation"

urlpatterns: list = [
    path("datasets/", views_datasets.dataset_list, name="dataset_list"),
    path("datasets/upload/", views_datasets.dataset_upload, name="dataset_upload"),
    path("datasets/<slug:name>/", views_datasets.dataset_detail, name="dataset_detail"),
    path(
        "datasets/<slug:name>/<slug:split>/download/<slug:fmt>/",
        views_datasets.dataset_download,
        name="dataset_download",
    ),
    path("campaigns/", views_campaigns.campaign_list, name="campaign_list"),
    path("campaigns/new/", views_campaigns.campaign_create, name="campaign_create"),
    path("campaigns/<int:pk>/", views_campaigns.campaign_detail, name="campaign_detail"),
    path("campaigns/<int:pk>/active/", views_campaigns.campaign_toggle, name="campaign_toggle"),
    path("campaigns/<int:pk>/start/", views_campaigns.campaign_start, name="campaign_start"),
    path("work/", views_annotate.my_work, name="my_work"),
    path("work/<int:pk>/", views_annotate.annotate, name="annotate"),
    path("work/<int:pk>/draft/", views_annotate.draft, name="annotate_draft"),
    path("work/<int:pk>/submit/", views_annotate.submit, name="annotate_submit"),
    path("work/<int:pk>/skip/", views_annotate.skip, name="annotate_skip"),
    path("rm-data/", views_rm_data.rm_data_page, name="rm_data"),
    path("rm-data/<int:pk>/download/<slug:name>/", views_rm_data.rm_data_download, name="rm_data_download"),
]
