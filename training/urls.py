from django.urls import path

from training import pipeline_views, views

app_name = "training"

urlpatterns = [
    path("runs/", views.run_list, name="run_list"),
    path("runs/new/", views.run_launch, name="run_launch"),
    path("runs/compare/", views.run_compare, name="run_compare"),
    path("runs/compare/metrics.json", views.run_compare_metrics, name="run_compare_metrics"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<int:run_id>/metrics.json", views.run_metrics, name="run_metrics"),
    path("runs/<int:run_id>/round/", views.run_round, name="run_round"),
    path("rounds/<int:job_id>/", views.round_status, name="round_status"),
    path("rounds/<int:job_id>/cancel/", views.round_cancel, name="round_cancel"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:run_id>/resume/", views.run_resume, name="run_resume"),
    path("runs/<int:run_id>/log.txt", views.run_log, name="run_log"),
    path("runs/<int:run_id>/artifacts/<int:artifact_id>/", views.artifact_download, name="artifact_download"),
    path("runs/<int:run_id>/artifacts/<int:artifact_id>/zip/", views.artifact_zip, name="artifact_zip"),
    path("runs/<int:run_id>/artifacts/<int:artifact_id>/zip/download/", views.artifact_zip_download, name="artifact_zip_download"),
    path("pipelines/new/", pipeline_views.pipeline_new, name="pipeline_new"),
    path("pipelines/<int:pk>/", pipeline_views.pipeline_detail, name="pipeline_detail"),
    path("pipelines/<int:pk>/compare/", pipeline_views.pipeline_compare, name="pipeline_compare"),
    path("pipelines/<int:pk>/cancel/", pipeline_views.pipeline_cancel, name="pipeline_cancel"),
    path("pipelines/<int:pk>/resume/", pipeline_views.pipeline_resume, name="pipeline_resume"),
]
