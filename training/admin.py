from django.contrib import admin

from training.models import Artifact, RunMetric, RunSample, TrainingRun


class ArtifactInline(admin.TabularInline):
    model = Artifact
    extra = 0
    readonly_fields = ("kind", "name", "path", "size_bytes", "meta", "created_at")


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "name", "kind", "status", "progress_step", "progress_total", "dataset", "created_at", "finished_at")
    list_filter = ("status", "kind")
    search_fields = ("name", "error")
    raw_id_fields = ("dataset", "created_by", "resumed_from")
    readonly_fields = ("created_at", "started_at", "finished_at", "heartbeat_at", "worker_host", "child_pid", "celery_task_id")
    inlines = [ArtifactInline]


@admin.register(RunMetric)
class RunMetricAdmin(admin.ModelAdmin):
    list_display = ("run", "step", "key", "value")
    list_filter = ("key",)
    raw_id_fields = ("run",)


@admin.register(RunSample)
class RunSampleAdmin(admin.ModelAdmin):
    list_display = ("run", "step", "total_reward")
    raw_id_fields = ("run",)
