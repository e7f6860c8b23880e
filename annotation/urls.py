from django.urls import path

from annotation.views import annotate, campaign_suggest, campaigns, datasets, reviews, rm_files

app_name = "annotation"

urlpatterns: list = [
    # The annotation requests first: every request tries the patterns in order, and these are nearly all of them.
    path("work/", annotate.my_work, name="my_work"),
    path("work/<int:pk>/flag/", annotate.flag, name="annotate_flag"),
    path("work/<int:pk>/time/", annotate.active_time, name="annotate_time"),
    path("work/<int:pk>/", annotate.annotate, name="annotate"),
    path("work/<int:pk>/draft/", annotate.draft, name="annotate_draft"),
    path("work/<int:pk>/submit/", annotate.submit, name="annotate_submit"),
    path("work/<int:pk>/skip/", annotate.skip, name="annotate_skip"),
    path("datasets/", datasets.dataset_list, name="dataset_list"),
    path("datasets/upload/", datasets.dataset_upload, name="dataset_upload"),
    path("datasets/<slug:name>/", datasets.dataset_detail, name="dataset_detail"),
    path(
        "datasets/<slug:name>/<slug:split>/examples/<int:number>/",
        datasets.example_detail,
        name="dataset_example",
    ),
    path(
        "datasets/<slug:name>/<slug:split>/export/<slug:fmt>/",
        datasets.dataset_export_start,
        name="dataset_export",
    ),
    path("datasets/jobs/<int:pk>/", datasets.dataset_job, name="dataset_job"),
    path("datasets/jobs/<int:pk>/download/", datasets.dataset_job_download, name="dataset_job_download"),
    path("campaigns/", campaigns.campaign_list, name="campaign_list"),
    path("campaigns/new/", campaigns.campaign_create, name="campaign_create"),
    path("campaigns/<int:pk>/", campaigns.campaign_detail, name="campaign_detail"),
    path("campaigns/<int:pk>/active/", campaigns.campaign_toggle, name="campaign_toggle"),
    path("campaigns/<int:pk>/settings/", campaigns.campaign_settings, name="campaign_settings"),
    path("campaigns/<int:pk>/start/", campaigns.campaign_start, name="campaign_start"),
    path("review/", reviews.home, name="review_home"),
    path("campaigns/<int:pk>/review/", reviews.queue, name="review_queue"),
    path("campaigns/<int:pk>/agreement/", reviews.agreement, name="campaign_agreement"),
    path("campaigns/<int:pk>/review/<slug:kind>/<int:number>/", reviews.item, name="review_item"),
    path("campaigns/<int:pk>/review/<slug:kind>/<int:number>/accept/", reviews.accept, name="review_accept"),
    path("campaigns/<int:pk>/review/<slug:kind>/<int:number>/gold/", reviews.save, name="review_save"),
    path("campaigns/<int:pk>/review/<slug:kind>/<int:number>/send-back/", reviews.send_back, name="review_send_back"),
    path("campaigns/<int:pk>/notes/<int:note_pk>/resolve/", reviews.resolve, name="review_resolve"),
    path("campaigns/<int:pk>/suggest/", campaign_suggest.campaign_suggest_panel, name="campaign_suggest_panel"),
    path("campaigns/<int:pk>/suggest/settings/", campaign_suggest.campaign_suggest_settings, name="campaign_suggest_settings"),
    path("campaigns/<int:pk>/suggest/score/", campaign_suggest.campaign_suggest_score, name="campaign_suggest_score"),
    path("rm-data/", rm_files.rm_data_page, name="rm_data"),
    path("rm-data/<int:pk>/download/<slug:name>/", rm_files.rm_data_download, name="rm_data_download"),
]
